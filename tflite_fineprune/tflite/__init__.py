"""Rewriting converted `.tflite` flatbuffers with numpy and the FlatBuffers schema, without TensorFlow.

One job a module:

- `schema`: the generated schema (object API) and reading/writing a `ModelT`;
- `flatbuffer`: the metadata table read straight from the bytes, and the content seal;
- `structure`: every reference of the graph checked against what the file holds, before anything else reads it;
- `types`, `ops`: tensor types, int8 scales, and what the builtin ops compute, in numpy;
- `graph`: a mutable view of one subgraph (op names, constants, users);
- `folding`: variables frozen to constants and constant-only ops evaluated;
- `channel_plan`: which channels each tensor keeps once masks are fixed, and the rewrite that removes the rest;
- `compaction`: the export's compact step, dead ops and tensors, the one buffer renumbering;
- `weight_quantization`: dynamic-range int8 weights as the converter writes them.
"""
