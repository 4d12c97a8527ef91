package org.tflitefineprune.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class ManifestTest {
    private fun refused(text: String, expected: String) {
        try {
            AssetManifest.parse(text, "m.json")
            fail("accepted a bad manifest; expected an error mentioning '$expected'")
        } catch (e: FinePruneException) {
            assertTrue("'${e.message}' should mention '$expected'", e.message!!.contains(expected))
        }
    }

    @Test
    fun refusesWhatIsNotAManifestOfThisVersion() {
        refused("[1, 2", "not valid JSON")
        refused("{}", "not a tflite-fineprune asset manifest")
        refused("""{"format": "tflite-fineprune-android-assets", "format_version": 2, "models": [], "users": []}""", "version 2")
        refused("""{"format": "tflite-fineprune-android-assets", "format_version": 1, "users": []}""", "incomplete")
        refused("""{"format": "tflite-fineprune-android-assets", "format_version": 1, "models": [],
            "users": [{"name": "u", "model": "speech", "description": "", "adapt": [], "eval": [],
            "expected": {"dense_accuracy": 1, "accuracy": 1, "pruned_units": 0, "unit_sparsity": 0,
            "weight_sparsity": 0, "mac_sparsity": 0, "excluded_classes": []}}]}""", "unknown model 'speech'")
    }

    @Test
    fun scalarsTakeTheDtypeTheSignatureDeclares() {
        assertEquals(DType.INT32, Tensor.scalar(DType.INT32, 1.0).dtype)
        assertEquals(listOf(1), Tensor.scalar(DType.INT32, 1.0).ints().toList())
        assertEquals(0.1f, Tensor.scalar(DType.FLOAT32, 0.1).floats()[0], 0f)
        try {
            Tensor.scalar(DType.UINT8, 1.0)
            fail("uint8 recipe arguments must be refused")
        } catch (e: FinePruneException) {
            assertTrue(e.message!!.contains("float32 or int32"))
        }
    }
}
