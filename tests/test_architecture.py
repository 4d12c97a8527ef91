"""The shape of the code: docs/architecture.md maps every module and names places that exist, no import circles,
size limits.

Pure source reading (ast, regular expressions): no TensorFlow, no model.
"""

import ast
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 100
PACKAGES = ("tflite_fineprune", "converters")


def _python_files():
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not listed:  # not a git checkout (an sdist): every .py file under the tree
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    return [ROOT / name for name in listed]


# A path in backticks, optionally followed by the names it defines: "`a/b.py` (`Name`, `other`)" or "`a/b.py`: `X`".
_PLACE = re.compile(r"`([\w./-]+\.(?:py|kt|md))`(?:\s*\(([^)]*)\)|:\s*`(\w+)`)?")


def _named_places():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for match in _PLACE.finditer(text):
        path, inside, single = match.groups()
        names = re.findall(r"`(\w+)`", inside or "") + ([single] if single else [])
        yield path, names


def _defines(source, name):
    pattern = (rf"^\s*(?:def|class|fun|object|(?:private |const )?val|var)\s+{name}\b"
               rf"|^\s*{name}\s*(?::[^=\n]*)?=|^(?:async )?def {name}\b|\bfun\s+(?:\w+\.)?{name}\b")
    return re.search(pattern, source, re.MULTILINE) is not None


def test_every_place_the_architecture_page_names_exists():
    places = list(_named_places())
    assert len(places) > 20
    for path, names in places:
        file = ROOT / path
        assert file.is_file(), f"docs/architecture.md names {path}, which does not exist"
        source = file.read_text(encoding="utf-8")
        for name in names:
            assert _defines(source, name), f"docs/architecture.md says {path} defines {name!r}; it does not"


def _mapped_modules(text):
    """Repo-relative paths of the entries of the page's tree (the first fenced block): an entry is a name at
    an indentation of two spaces a level, before the description column; a folder entry ends in "/"."""
    block = text.split("```")[1]
    found, folders = set(), []
    for line in block.splitlines():
        match = re.match(r"^( *)([\w.]+/?)(?:\s{2,}|$)", line)
        if not match or len(match.group(1)) % 2:
            continue
        depth = len(match.group(1)) // 2
        if depth > len(folders):  # deeper than any folder above it: a description's continuation line
            continue
        del folders[depth:]
        name = match.group(2)
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
            found.add("/".join(folders) + "/__init__.py")  # a package's folder line maps its __init__ too
        else:
            found.add("/".join(folders + [name]))
    return found


def test_every_module_is_on_the_architecture_map():
    mapped = _mapped_modules((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    modules = {str(p.relative_to(ROOT)) for p in _python_files() if p.relative_to(ROOT).parts[0] in PACKAGES}
    assert len(modules) > 90
    missing = sorted(modules - mapped)
    assert not missing, f"docs/architecture.md's tree has no line for {missing}: add one saying what it holds"


def test_the_map_check_can_fail():
    tree = "x\n```\npkg/\n  a.py    what a is\n  sub/    a folder\n    b.py  what b is\n          c.py wraps\n```\n"
    assert _mapped_modules(tree) == {"pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/b.py"}


def test_the_place_check_can_fail():
    assert not _defines("def personalize(x):\n    pass\n", "search_sparsity")
    assert _defines("LEVERS: tuple = (\n", "LEVERS") and _defines("object AutoRecipe {\n", "AutoRecipe")


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path, module):
    """Modules of PACKAGES that `module` imports anywhere in its source (function bodies included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[:len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return result


def test_no_import_circles():
    files = [p for p in _python_files() if p.relative_to(ROOT).parts[0] in PACKAGES]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for module, path in modules.items():
        # "from pkg import name" may name a module or an attribute: keep what is a module; a package's
        # __init__ importing its own submodules is how packages are built, not a circle.
        targets = {t for t in _imports(path, module) if t in modules and t != module}
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(module + ".")}
        graph[module] = targets
    assert _cycles(graph) == []


def test_the_circle_check_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_and_function_sizes(path):
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{lines} lines; at most {MAX_MODULE_LINES}"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
            length = node.end_lineno - body[0].lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{node.name} has a {length}-line body"
