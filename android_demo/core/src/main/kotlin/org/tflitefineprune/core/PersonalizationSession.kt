package org.tflitefineprune.core

/** What a Personalize run shows: accuracy before and after, what was removed, how long it took. */
class PersonalizationResult(
    val denseAccuracy: Double,
    val accuracy: Double,
    val sparsity: Sparsity,
    val excludedClasses: List<String>,
    val state: PersonalizationState,
    val millis: Long,
    /** What the automatic recipe chose (null for a fixed recipe). */
    val auto: AutoReport? = null,
)

/**
 * The on-device routine, whatever runs the signatures (LiteRT on the phone, a replay on the JVM):
 * observe a user's unlabeled samples with `collect`, apply the manifest's recipe (the automatic one,
 * [AutoRecipe], or a list of signature calls), evaluate with `infer`. One sample per call; every input's dtype and shape come from the
 * model's signature descriptions, so the session sends exactly what the model declares.
 */
class PersonalizationSession(val model: ModelSpec, private val runner: SignatureRunner) {
    private val layout get() = model.layout

    fun interface Progress {
        fun update(stage: String, done: Int, total: Int)
    }

    /** Calls a signature whose inputs are all scalars (or 1-element vectors), typed as the model declares. */
    fun callScalars(signature: String, arguments: Map<String, Double>): Map<String, Tensor> {
        val spec = model.signature(signature)
        val inputs = LinkedHashMap<String, Tensor>()
        for (input in spec.inputs) {
            val value = arguments[input.name] ?: throw FinePruneException("signature '$signature' needs input '${input.name}'; the call gives ${arguments.keys}")
            if (input.elements != 1) throw FinePruneException("input '${input.name}' of '$signature' has shape ${input.shape.contentToString()}, not a scalar")
            val scalar = Tensor.scalar(input.dtype, value)
            inputs[input.name] = Tensor(scalar.dtype, input.shape, scalar.bytes)
        }
        val unknown = arguments.keys - spec.inputs.map { it.name }.toSet()
        if (unknown.isNotEmpty()) throw FinePruneException("signature '$signature' has no inputs $unknown")
        return runner.run(signature, inputs)
    }

    fun reset(counts: Boolean = true, masks: Boolean = true) {
        callScalars(Signatures.RESET, mapOf(Signatures.CLEAR_COUNTS to if (counts) 1.0 else 0.0, Signatures.CLEAR_MASKS to if (masks) 1.0 else 0.0))
    }

    private fun forward(signature: String, sample: Tensor): FloatArray {
        val name = model.signature(signature).inputs.single().name
        val out = runner.run(signature, mapOf(name to sample))
        return (out[Signatures.OUTPUT] ?: throw FinePruneException("signature '$signature' returned ${out.keys}, not '${Signatures.OUTPUT}'")).floats()
    }

    /** The model's output for one sample (`infer`): one value per class. */
    fun scores(sample: Tensor): FloatArray = forward(Signatures.INFER, sample)

    /** Class index predicted for each sample (`infer`: counters and masks are not changed). */
    fun predict(samples: List<Tensor>, progress: Progress? = null): IntArray = IntArray(samples.size) { i ->
        progress?.update("evaluate", i, samples.size)
        argmax(forward(Signatures.INFER, samples[i]))
    }

    fun accuracy(samples: List<Tensor>, labels: IntArray, progress: Progress? = null): Double {
        if (samples.size != labels.size || samples.isEmpty()) throw FinePruneException("need as many labels as samples (${samples.size} samples, ${labels.size} labels), at least one")
        val predicted = predict(samples, progress)
        return predicted.indices.count { predicted[it] == labels[it] }.toDouble() / samples.size
    }

    /** What `collect` said of each sample: the class predicted, and the typicality (null: the model has none). */
    class Observed(val predicted: IntArray, val typicality: FloatArray?)

    /** Runs unlabeled samples through `collect`, accumulating unit activity; what it said of each sample. */
    fun observe(samples: List<Tensor>, progress: Progress? = null): Observed {
        if (samples.isEmpty()) throw FinePruneException("no data: observe needs at least one sample")
        val name = model.signature(Signatures.COLLECT).inputs.single().name
        val predicted = IntArray(samples.size)
        val typicality = FloatArray(samples.size)
        var typical = true
        samples.forEachIndexed { i, sample ->
            progress?.update("observe", i, samples.size)
            val out = runner.run(Signatures.COLLECT, mapOf(name to sample))
            predicted[i] = argmax((out[Signatures.OUTPUT] ?: throw FinePruneException("signature 'collect' returned ${out.keys}, not '${Signatures.OUTPUT}'")).floats())
            val score = out[Signatures.TYPICALITY]
            if (score == null) typical = false else typicality[i] = score.floats()[0]
        }
        progress?.update("observe", samples.size, samples.size)
        return Observed(predicted, if (typical) typicality else null)
    }

    fun applyRecipe(recipe: Recipe = model.recipe) {
        for (step in recipe.steps) callScalars(step.signature, step.arguments)
    }

    fun getState(): PersonalizationState {
        val out = callScalars(Signatures.GET_STATE, mapOf(Signatures.TOKEN to 0.0))
        fun vector(name: String) = (out[name] ?: throw FinePruneException("get_state returned ${out.keys}, without '$name'")).floats()
        val optional = LinkedHashMap<String, FloatArray>()
        // The blocks the model keeps, as its metadata lays them out (or the built-in table for older exports).
        val blocks = layout.stateExpectation().blocks
        for (block in blocks) for (name in block.names) optional[name] = vector(name)
        return PersonalizationState(vector(Signatures.MASKS), vector(Signatures.COUNTS), vector(Signatures.SAMPLES)[0].toDouble(), optional, blocks)
    }

    /** Feeds a saved state into the model (`set_state`, then the setters of its optional vectors). */
    fun setState(state: PersonalizationState) {
        val n = layout.numUnits
        if (state.masks.size != n || state.counts.size != n) throw FinePruneException("state has ${state.masks.size} masks and ${state.counts.size} counts; this model has $n units")
        for (g in layout.groups) {
            if ((0 until g.units).none { state.masks[g.offset + it] != 0f }) throw FinePruneException("masks prune every unit of '${g.name}'; at least one must stay")
        }
        // A version-1 state of a model with normalization statistics: trained statistics, no moments (as Python's set_state).
        // Likewise a version-2 state of a model with classifier prototypes: the trained kernel, no supports.
        if ((layout.normChannels > 0 && "norm_mean" !in state.optional) || (layout.headFeatures > 0 && "head_kernel" !in state.optional)) reset()
        val spec = model.signature(Signatures.SET_STATE)
        runner.run(Signatures.SET_STATE, linkedMapOf(
            Signatures.MASKS to Tensor.ofFloats(spec.input(Signatures.MASKS).shape, state.masks),
            Signatures.COUNTS to Tensor.ofFloats(spec.input(Signatures.COUNTS).shape, state.counts),
            Signatures.SAMPLES to Tensor.ofFloats(spec.input(Signatures.SAMPLES).shape, floatArrayOf(state.samples.toFloat())),
        ))
        val described = layout.stateExpectation().blocks.flatMap { b -> b.names.map { it to b.setSignature } }.toMap()
        for ((setter, names) in state.optional.keys.groupBy { described[it] ?: Signatures.SETTERS[it] ?: throw FinePruneException("no signature sets state vector '$it'") }) {
            val setterSpec = model.signature(setter)
            runner.run(setter, names.associateWith { Tensor.ofFloats(setterSpec.input(it).shape, state.optional.getValue(it)) })
        }
    }

    /**
     * The Personalize button: dense accuracy on the held-out half, observe the adaptation half
     * without labels, apply the recipe, accuracy after. Labels only score; they never reach the model.
     */
    fun personalize(adapt: List<Tensor>, eval: List<Tensor>, labels: IntArray, progress: Progress? = null, clock: () -> Long = System::currentTimeMillis): PersonalizationResult {
        reset()
        val dense = accuracy(eval, labels, progress)
        val start = clock()
        val rule = model.recipe.auto
        val report = if (rule != null) AutoRecipe.personalize(this, adapt, rule, progress) else {
            observe(adapt, progress)
            applyRecipe()
            null
        }
        val millis = clock() - start
        val state = getState()
        val after = accuracy(eval, labels, progress)
        return PersonalizationResult(dense, after, Sparsity.measure(layout, state.masks), layout.excludedClasses(state.masks), state, millis, report)
    }

    companion object {
        fun argmax(values: FloatArray): Int {
            var best = 0
            for (i in 1 until values.size) if (values[i] > values[best]) best = i
            return best
        }
    }
}
