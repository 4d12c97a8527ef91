"""The Android app's user-visible text lives in `res/values/strings.xml`, not in Kotlin string literals.

The app's Kotlin sources are scanned for string literals (templates, nested strings and comments understood); every
literal with text in it must be one a user never sees: a key, a file name, a MIME type, an Android name, or the
message of an exception that reports a broken build or a programming error. Those are listed here, each with why.
A new literal that reads like a message fails the test, naming its file and line.
"""

import re
import xml.etree.ElementTree as ElementTree

from tests.realdata import REPO

APP = REPO / "android_demo" / "app" / "src" / "main"
SOURCES = APP / "java"
STRINGS = APP / "res" / "values" / "strings.xml"

# Literals with text that never reach the screen as text of the app's own, each with the reason.
NOT_SHOWN = {
    "fineprune-demo": "the SharedPreferences file's name",
    "active_": "a preferences key prefix",
    "model": "a preferences key (the last model used)",
    "fineprune-model": "the worker thread's name",
    "getInDomainShare": "a getter looked up by name (reflection)",
    "me": "the profile name Me's profile is stored under (a file name, like a bundled user's name)",
    "screen": "a saved-state key",
    "user": "a saved-state key",
    "pending-microphone": "a saved-state key",
    "record-one": "a pending microphone action's key",
    "record-batch": "a pending microphone action's key",
    "listen": "a pending microphone action's key",
    "package": "the URI scheme of the app's Settings page",
    "observe": "a progress stage name the core reports, mapped to a string resource",
    "evaluate": "a progress stage name the core reports, mapped to a string resource",
    "manifest.json": "an asset's file name",
    ".state": "a file name suffix",
    ".samples": "a file name suffix",
    ".consent": "a file name suffix",
    "profiles": "a folder in app storage",
    "models/.tflite": "a model's path in app storage",
    "/": "a path separator",
    "photo": "a temporary file's prefix",
    ".img": "a temporary file's suffix",
    "speech": "a model kind in the manifest",
    "SHA-256": "a digest algorithm's name",
    "application/octet-stream": "the shared profile's MIME type",
    "org.tflitefineprune.demo.profiles": "the ProfileProvider's authority",
    "content": "a URI scheme",
    "r": "a file mode",
    "%.1f%%": "the percentage's number format (Locale.US, as Python prints it)",
    "–": "the percentage of a value that is not a number",
    "[^A-Za-z0-9._+-]": "a regular expression",
    "_": "the prefix of a profile name that would be empty or dots only",
    "image/*": "a MIME type pattern (the photo picker)",
}

# Calls whose literal arguments are diagnostics in English (a broken build, a programming error) or annotations.
DIAGNOSTIC = re.compile(r"\b(\w*Exception|\w*Error|require|check|error)\(|@Suppress\(|@Deprecated\(")


def _skip_identifier(source, i):
    while i < len(source) and (source[i].isalnum() or source[i] == "_"):
        i += 1
    return i


def _lex(source, i, literals, in_template):
    """Scans Kotlin code from `i`; adds (start, text) per string literal; returns where it stopped."""
    depth = 0
    while i < len(source):
        c = source[i]
        if source.startswith("//", i):
            i = source.find("\n", i)
            i = len(source) if i < 0 else i
        elif source.startswith("/*", i):
            nesting, i = 1, i + 2
            while nesting:
                if source.startswith("/*", i):
                    nesting, i = nesting + 1, i + 2
                elif source.startswith("*/", i):
                    nesting, i = nesting - 1, i + 2
                else:
                    i += 1
        elif c == "'":
            i = source.index("'", i + 2 if source[i + 1] == "\\" else i + 1) + 1
        elif c == '"':
            i = _string(source, i, literals)
        elif c == "{":
            depth += 1
            i += 1
        elif c == "}":
            if in_template and depth == 0:
                return i + 1
            depth -= 1
            i += 1
        else:
            i += 1
    return i


def _string(source, start, literals):
    """Reads the literal at `start` (plain or raw); adds its text outside templates; returns the index after it."""
    raw = source.startswith('"""', start)
    i = start + (3 if raw else 1)
    text = []
    while True:
        if raw and source.startswith('"""', i):
            i += 3
            break
        if not raw and source[i] == '"':
            i += 1
            break
        if not raw and source[i] == "\\":
            text.append(source[i:i + 2])
            i += 2
        elif source.startswith("${", i):
            i = _lex(source, i + 2, literals, in_template=True)
        elif source[i] == "$" and (source[i + 1].isalpha() or source[i + 1] == "_"):
            i = _skip_identifier(source, i + 1)
        else:
            text.append(source[i])
            i += 1
    literals.append((start, "".join(text)))
    return i


def string_literals(source):
    """Every string literal of a Kotlin source: (line number, the code before it on its line, its text)."""
    found = []
    _lex(source, 0, found, in_template=False)
    result = []
    for start, text in sorted(found):
        line_start = source.rfind("\n", 0, start) + 1
        result.append((source.count("\n", 0, start) + 1, source[line_start:start], text))
    return result


def test_the_scanner_finds_literals_in_templates_and_skips_comments():
    source = (
        'val a = "x ${f("inner")} y" // "comment"\n'
        '/* "block /* nested */" */ val c = \'"\'\n'
        'val b = """raw $v"""\n'
    )
    assert [(n, text) for n, _, text in string_literals(source)] == [(1, "x  y"), (1, "inner"), (3, "raw ")]


def shown_literals(source):
    """(line, text) of each literal in a Kotlin source that may reach the screen as the app's own words."""
    return [(line, text) for line, before, text in string_literals(source)
            if text.strip() and text not in NOT_SHOWN and not DIAGNOSTIC.search(before)]


def test_text_in_code_is_found_and_keys_and_diagnostics_are_not():
    source = (
        'line("prunable units: ${layout.numUnits}")\n'
        'status = "$what failed"\n'
        'val joined = names.joinToString("; ")\n'
        'throw FinePruneException("asset \'$path\' is missing")\n'
        'preferences(app).getString("model", null)\n'
        'line(getString(R.string.model_recipe, spec.recipe.name))\n'
    )
    assert shown_literals(source) == [(1, "prunable units: "), (2, " failed"), (3, "; ")]


def test_no_user_visible_text_is_a_kotlin_literal():
    sources = sorted(SOURCES.rglob("*.kt"))
    assert len(sources) >= 10
    shown, allowed = [], set()
    for path in sources:
        source = path.read_text()
        allowed |= {text for _, _, text in string_literals(source) if text in NOT_SHOWN}
        shown += [f"{path.relative_to(REPO)}:{line}: {text!r}" for line, text in shown_literals(source)]
    assert set(NOT_SHOWN) - allowed == set(), "listed as not shown but no longer in the code"
    assert shown == [], "text a user may see is a Kotlin literal (move it to strings.xml):\n" + "\n".join(shown)


def test_every_resource_the_code_names_exists_and_plurals_have_one_and_other():
    root = ElementTree.parse(STRINGS).getroot()
    strings = {e.get("name") for e in root.iter("string")}
    plurals = {e.get("name"): {i.get("quantity") for i in e.iter("item")} for e in root.iter("plurals")}
    code = "\n".join(p.read_text() for p in SOURCES.rglob("*.kt"))
    for name in set(re.findall(r"(?<!android\.)\bR\.string\.(\w+)", code)):
        assert name in strings, f"R.string.{name} is not in strings.xml"
    for name in set(re.findall(r"\bR\.plurals\.(\w+)", code)):
        assert name in plurals, f"R.plurals.{name} is not in strings.xml"
    for name, quantities in plurals.items():
        assert {"one", "other"} <= quantities, f"plurals {name} has {sorted(quantities)}"
    # aapt2 collapses runs of white space and trims the ends of a text that is not in double quotes.
    for element in [*root.iter("string"), *root.iter("item")]:
        text = element.text or ""
        if not (text.startswith('"') and text.endswith('"')):
            where = element.get("name") or repr(text)
            assert "  " not in text and text == text.strip(), f"{where}: spaces aapt2 would drop"
    unused = {n for n in strings | set(plurals) if n != "app_name" and f".{n}" not in code}
    assert not unused, f"strings.xml declares resources no Kotlin source uses: {sorted(unused)}"
