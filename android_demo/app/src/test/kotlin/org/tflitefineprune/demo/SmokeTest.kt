package org.tflitefineprune.demo

import android.graphics.BitmapFactory
import org.junit.Assert.assertEquals
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner
import org.robolectric.annotation.Config
import org.robolectric.annotation.GraphicsMode
import java.io.File
import javax.imageio.ImageIO

@RunWith(RobolectricTestRunner::class)
@Config(sdk = [34])
@GraphicsMode(GraphicsMode.Mode.NATIVE)
class SmokeTest {
    @Test
    fun decodesPng() {
        val f = File("/tmp/h16act/assets/users/cifar-dog+frog+truck/adapt/000.png")
        val b = BitmapFactory.decodeFile(f.path)
        val img = ImageIO.read(f)
        assertEquals(img.getRGB(3, 4), b.getPixel(3, 4))
        println("pixel ok ${b.width}x${b.height}")
    }
}
