"""Every public definition has a numpydoc docstring: Parameters naming each parameter, Returns where it returns.

The public definitions: `tflite_fineprune.__all__`, the public methods and properties of `Personalizer` (its own
and its levers' method mixins). Read from the source with `ast` where importing would need TensorFlow (the
export side), otherwise with `inspect`: no TensorFlow, no model.
"""

import ast
import dataclasses
import importlib
import inspect
import pathlib
import re
import textwrap

import pytest

import tflite_fineprune
from tflite_fineprune import Personalizer

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Written statically by the State issue (house2); until then `state.py` builds it from the lever table.
NOT_YET = {"State"}


def _section(doc, title):
    """The body of a numpydoc section (`title` underlined by dashes), or None."""
    match = re.search(rf"^{title}\n-{{3,}}\n(.*?)(?=^\w[\w ]*\n-{{3,}}\n|\Z)", doc, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else None


def _names_in(section):
    """Parameter names of a section's entries (`name : type`, `*args`, `a, b : int`)."""
    names = set()
    for line in section.splitlines():
        match = re.match(r"^(\*{0,2}[\w, *]+?)\s*(?::|$)", line)
        if match and line[:1] not in (" ", ""):
            names.update(name.strip().lstrip("*") for name in match.group(1).split(","))
    return names


def _problems(doc, parameters, returns, kind="Parameters"):
    doc = inspect.cleandoc(doc or "")
    if not doc.strip():
        return ["no docstring"]
    found = []
    if parameters:
        section = _section(doc, kind)
        if section is None:
            found.append(f"no {kind} section (parameters {parameters})")
        else:
            missing = [p for p in parameters if p not in _names_in(section)]
            if missing:
                found.append(f"{kind} does not name {missing}")
    if returns and _section(doc, "Returns") is None and _section(doc, "Yields") is None:
        found.append("no Returns section")
    return found


def _returns_value(function_node):
    for node in ast.walk(function_node):
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
    return False


def _function_node(obj):
    source = textwrap.dedent(inspect.getsource(obj))
    return ast.parse(source).body[0]


def _parameters(node):
    arguments = node.args
    names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
    names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return [name for name in names if name not in ("self", "cls")]


def _check_function(obj):
    node = _function_node(obj)
    return _problems(inspect.getdoc(obj), _parameters(node), _returns_value(node))


def _check_class(cls):
    own = cls.__dict__.get("__doc__")
    if dataclasses.is_dataclass(cls):
        fields = [f.name for f in dataclasses.fields(cls)]
        return _problems(own, fields, False, kind="Attributes")
    if issubclass(cls, BaseException):
        return _problems(own, [], False)
    init = cls.__dict__.get("__init__")
    parameters = _parameters(_function_node(init)) if init is not None else []
    return _problems(own, parameters, False)


def _source_definition(module, name):
    """(kind, problems) of a definition read from its module's source: the export side imports TensorFlow."""
    path = ROOT / (module.replace(".", "/") + ".py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            if isinstance(node, ast.FunctionDef):
                return _problems(ast.get_docstring(node), _parameters(node), _returns_value(node))
            decorated = any("dataclass" in ast.unparse(d) for d in node.decorator_list)
            fields = [n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and decorated]
            init = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
            if fields:
                return _problems(ast.get_docstring(node), fields, False, kind="Attributes")
            return _problems(ast.get_docstring(node), _parameters(init[0]) if init else [], False)
    raise AssertionError(f"{module} defines no {name}")


def _public():
    for name in sorted(set(tflite_fineprune.__all__) - {"__version__"} - NOT_YET):
        if name in tflite_fineprune._LAZY:
            module, attribute = tflite_fineprune._LAZY[name]
            if module.startswith("tflite_fineprune.export"):
                yield name, ("source", module, attribute)
                continue
            yield name, getattr(importlib.import_module(module), attribute)
        else:
            yield name, getattr(tflite_fineprune, name)
    for name, member in inspect.getmembers(Personalizer):
        if not name.startswith("_"):
            yield f"Personalizer.{name}", member


PUBLIC = dict(_public())


def _check(obj):
    if isinstance(obj, tuple):
        return _source_definition(*obj[1:])
    if isinstance(obj, property):
        return _problems(inspect.getdoc(obj.fget), [], False)  # an attribute: what it is, no sections needed
    if inspect.isclass(obj):
        return _check_class(obj)
    return _check_function(obj)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_definition_has_a_numpydoc_docstring(name):
    assert _check(PUBLIC[name]) == [], name


def test_the_docstring_check_can_fail():
    def undocumented(x, scale=1.0):
        return x * scale

    def documented(x, scale=1.0):
        """Scale.

        Parameters
        ----------
        x : float
            The value.

        Returns
        -------
        float
        """
        return x * scale

    assert _check_function(undocumented) == ["no docstring"]
    assert _check_function(documented) == ["Parameters does not name ['scale']"]
    assert len(PUBLIC) > 35 and "export_model" in PUBLIC and "Personalizer.set_state" in PUBLIC
