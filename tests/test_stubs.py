"""The typed stubs (runtime.pyi, state.pyi) say exactly what the real module offers, so they cannot drift.

`Personalizer` takes most methods from the levers' mixins and `State` is made by `make_dataclass`; checkers
read the stubs instead. Every public name, method, property, attribute and field of the real module must be in
its stub with the same parameter names, in the same order, and the stub must name nothing else.
"""

import ast
import configparser
import dataclasses
import inspect
import pathlib

import pytest

from tflite_fineprune import runtime, state

PACKAGE = pathlib.Path(runtime.__file__).parent


def _stub(module):
    return ast.parse((PACKAGE / f"{module.__name__.rsplit('.', 1)[1]}.pyi").read_text())


def _top_level(tree):
    """Public names a module body defines (not imports): functions, classes and assigned names."""
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    return {name: node for name, node in names.items() if not name.startswith("_")}


def _parameters(function_node):
    args = function_node.args
    return [a.arg for a in args.posonlyargs + args.args] + ([args.vararg.arg] if args.vararg else []) + [
        a.arg for a in args.kwonlyargs] + ([args.kwarg.arg] if args.kwarg else [])


def _is_property(function_node):
    return any(isinstance(d, ast.Name) and d.id == "property" for d in function_node.decorator_list)


@pytest.mark.parametrize("module", [runtime, state], ids=lambda m: m.__name__)
def test_the_stub_names_the_modules_public_definitions_and_nothing_else(module):
    real = _top_level(ast.parse(inspect.getsource(module)))
    stub = _top_level(_stub(module))
    assert sorted(stub) == sorted(real)
    for name, node in stub.items():
        if isinstance(node, ast.FunctionDef):
            assert _parameters(node) == list(inspect.signature(getattr(module, name)).parameters), name


def _instance_attributes(cls):
    """Public attributes `__init__` assigns (`self.x = ...`, also inside tuple targets)."""
    tree = ast.parse(inspect.getsource(cls.__init__).strip().replace("\n    ", "\n"))
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == "self" and not node.attr.startswith("_")}


def _stub_class(module, name):
    return next(node for node in _stub(module).body if isinstance(node, ast.ClassDef) and node.name == name)


def test_personalizer_stub_matches_the_assembled_class():
    cls = runtime.Personalizer
    stub = _stub_class(runtime, "Personalizer")
    methods = {node.name: node for node in stub.body if isinstance(node, ast.FunctionDef)}
    attributes = {node.target.id for node in stub.body if isinstance(node, ast.AnnAssign)}
    public = {name for name in dir(cls) if not name.startswith("_")}
    assert sorted(set(methods) - {"__init__"}) == sorted(public), "methods and properties (levers' mixins included)"
    assert attributes == _instance_attributes(cls)
    for name, node in methods.items():
        member = inspect.getattr_static(cls, name)
        assert _is_property(node) == isinstance(member, property), name
        if not isinstance(member, property):
            assert _parameters(node) == list(inspect.signature(member).parameters), name


def test_state_stub_lists_every_field_in_order_with_its_default():
    stub = _stub_class(state, "State")
    fields = [(node.target.id, node.value is not None) for node in stub.body if isinstance(node, ast.AnnAssign)]
    real = [(field.name, field.default is None) for field in dataclasses.fields(state.State)]
    assert fields == real
    assert all(isinstance(node.value, ast.Constant) and node.value.value is None
               for node in stub.body if isinstance(node, ast.AnnAssign) and node.value is not None)
    assert state.State.__dataclass_params__.frozen


def test_the_stubs_and_marker_are_shipped():
    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    shipped = config["options.package_data"]["tflite_fineprune"].split(",")
    assert {"py.typed", "*.pyi"} <= {entry.strip() for entry in shipped}
    assert (PACKAGE / "py.typed").is_file()


def test_lever_hooks_get_the_public_checks_interface():
    """`Lever.validate_metadata` receives a `MetadataChecks`; the metadata's checker offers exactly its methods."""
    from tflite_fineprune.levers.base import Lever, MetadataChecks
    from tflite_fineprune.metadata import MetadataChecker

    interface = {name for name in vars(MetadataChecks) if not name.startswith("_")}
    offered = {name for name in vars(MetadataChecker) if not name.startswith("_")}
    assert interface == offered
    for name in interface:
        expected = list(inspect.signature(getattr(MetadataChecks, name)).parameters)
        assert list(inspect.signature(getattr(MetadataChecker(""), name)).parameters) == [
            p for p in expected if p != "self"], name
    assert inspect.signature(Lever.validate_metadata).parameters["check"].annotation in (MetadataChecks,
                                                                                         "MetadataChecks")
