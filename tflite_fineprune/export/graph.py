"""A flat, topologically ordered view of a Keras 3 model's layer graph.

Sequential and functional models are supported; models nested as layers are
inlined, so a `keras.applications` backbone inside a classifier is one graph.
Tensors are identified by `id()` of their symbolic Keras tensors.
"""

import dataclasses

import keras

from ..errors import ModelError
from .keras_compat import functional_graph, nodes_by_depth


@dataclasses.dataclass
class Node:
    """One layer call: `outputs = layer(*inputs)`; `layer is None` for an alias."""

    layer: object
    inputs: list
    outputs: list
    arguments: object = None

    @property
    def name(self):
        return self.layer.name if self.layer is not None else "<alias>"


@dataclasses.dataclass
class KerasGraph:
    nodes: list
    inputs: list
    outputs: list
    shapes: dict  # tensor id -> static shape tuple

    def consumers(self):
        found = {}
        for node in self.nodes:
            for tid in node.inputs:
                found.setdefault(tid, []).append(node)
        return found

    def producers(self):
        return {tid: node for node in self.nodes for tid in node.outputs}

    def run(self, inputs, call):
        """Evaluate the graph; `call(node, args, kwargs)` returns the node's outputs."""
        values = self.evaluate(inputs, call)
        return [values[tid] for tid in self.outputs]

    def evaluate(self, inputs, call):
        """Like `run`, but return every tensor's value by tensor id."""
        values = dict(zip(self.inputs, inputs))
        for node in self.nodes:
            if node.layer is None:
                values[node.outputs[0]] = values[node.inputs[0]]
                continue
            args, kwargs = node.arguments.fill_in(values)
            outputs = call(node, args, kwargs)
            outputs = keras.tree.flatten(outputs)
            for tid, value in zip(node.outputs, outputs):
                values[tid] = value
        return values


def _functional_of(model):
    functional = functional_graph(model)
    if functional is None:
        raise ModelError(
            f"Sequential model {model.name!r} is not built: give it a keras.Input(...) first layer "
            "or call model.build(input_shape) before exporting"
        )
    return functional


def _is_model(op):
    return isinstance(op, keras.Model) or isinstance(op, keras.Sequential)


def flatten_model(model):
    """Return the model's `KerasGraph` with nested models inlined."""
    if not isinstance(model, keras.Model):
        raise ModelError(f"expected a keras.Model, got {type(model).__name__}")
    functional = _functional_of(model)
    if nodes_by_depth(functional) is None:
        raise ModelError(
            f"model {model.name!r} ({type(model).__name__}) is a subclassed model without a layer graph; "
            "export a Sequential or functional model"
        )
    nodes, shapes = [], {}
    _append(functional, nodes, shapes, set())
    return KerasGraph(nodes=nodes,
                 inputs=[id(t) for t in functional.inputs],
                 outputs=[id(t) for t in keras.tree.flatten(functional.outputs)],
                 shapes=shapes)


def _append(functional, nodes, shapes, inlined):
    for tensor in functional.inputs:
        shapes[id(tensor)] = tuple(tensor.shape)
    by_depth = nodes_by_depth(functional)
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            op = node.operation
            if op is None or node.is_input:
                continue
            inputs = [id(t) for t in node.input_tensors]
            outputs = [id(t) for t in node.outputs]
            for tensor in node.outputs:
                shapes[id(tensor)] = tuple(tensor.shape)
            if _is_model(op):
                inner = _functional_of(op)
                if id(inner) in inlined:
                    raise ModelError(f"model {op.name!r} is called more than once; shared models are not supported")
                inlined.add(id(inner))
                for outer, inner_in in zip(inputs, inner.inputs):
                    nodes.append(Node(None, [outer], [id(inner_in)]))
                _append(inner, nodes, shapes, inlined)
                for inner_out, outer in zip(keras.tree.flatten(inner.outputs), outputs):
                    nodes.append(Node(None, [id(inner_out)], [outer]))
            else:
                nodes.append(Node(op, inputs, outputs, node.arguments))
