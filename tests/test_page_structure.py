"""The pages' two rules, checked in their source: every request goes through an `api.js`
(static/js/api.js for the explorer, static/js/training/api.js for the lab), and the store is changed
only through its setter, never assigned to from outside its own file (static/js/state.js,
static/js/training/store.js). Comments, and the text of strings and regular expressions, are not code
and are not searched."""

import re
from pathlib import Path

import pytest

from tests import ROOT

JS = ROOT / "static" / "js"
API_FILES = {JS / "api.js", JS / "training" / "api.js"}
STORE_FILES = {JS / "state.js", JS / "training" / "store.js"}

# What makes a request: fetch, a server-sent event stream, XHR, a socket, a beacon, or an image
# element given a URL to load.
REQUESTS = {
    "fetch(": re.compile(r"\bfetch\s*\("),
    "EventSource(": re.compile(r"\bEventSource\s*\("),
    "XMLHttpRequest": re.compile(r"\bXMLHttpRequest\b"),
    "WebSocket(": re.compile(r"\bWebSocket\s*\("),
    "sendBeacon(": re.compile(r"\bsendBeacon\s*\("),
    "new Image(": re.compile(r"\bnew\s+Image\s*\("),
    ".src =": re.compile(r"\.\s*src\s*=(?!=)"),
}

_FIELD = r"\bstore\s*\.\s*[A-Za-z_$][\w$]*"
# What changes the store behind its setter: an assignment to a field (this.store.x too), Object.assign
# onto it, deleting a field, or changing a Set / Map / array it holds in place.
STORE_WRITES = {
    "store.<field> =": re.compile(_FIELD + r"\s*(?:[-+*/%|&^]|\*\*|<<|>>>?|\?\?|\|\||&&)?=(?!=)"),
    "store.<field>++": re.compile(_FIELD + r"\s*(?:\+\+|--)|(?:\+\+|--)\s*" + _FIELD),
    "Object.assign(store": re.compile(r"\bObject\s*\.\s*assign\s*\(\s*(?:[\w$]+\s*\.\s*)*store\s*[,)]"),
    "delete store.<field>": re.compile(r"\bdelete\s+(?:[\w$]+\s*\.\s*)*" + _FIELD),
    "store.<field>.add(": re.compile(_FIELD + r"\s*\.\s*(?:add|delete|clear|set|push|pop|shift|unshift|splice|sort)\s*\("),
}

# After these, a `/` starts a regular expression; after a value (a name, a number, `)`, `]`), it divides.
_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^") | {"", "return", "typeof", "case", "do", "else", "in", "of", "new",
                                                "delete", "void", "throw", "instanceof", "yield", "await"}


def code_only(source: str) -> str:
    """`source` with comments and the text of string, template and regex literals blanked to spaces
    (newlines kept, so line numbers hold); the code inside a template's `${…}` stays."""
    out = list(source)
    n = len(source)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    def template_text(i: int) -> tuple[int, bool]:
        """From inside a template at i: the index after its closing backtick (False) or after `${` (True)."""
        j = i
        while j < n:
            if source[j] == "\\":
                j += 2
            elif source[j] == "`":
                blank(i, j)
                return j + 1, False
            elif source.startswith("${", j):
                blank(i, j)
                return j + 2, True
            else:
                j += 1
        blank(i, n)
        return n, False

    i, depth, prev = 0, 0, ""
    open_templates: list[int] = []  # the brace depth at which each open `${` closes
    while i < n:
        ch = source[i]
        if source.startswith("//", i):
            end = source.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif ch in "'\"":
            j = i + 1
            while j < n and source[j] != ch and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            blank(i + 1, j)
            i, prev = j + 1, '"'
        elif ch == "`":
            i, opened = template_text(i + 1)
            if opened:
                open_templates.append(depth)
            prev = "`"
        elif ch == "/" and prev in _REGEX_AFTER:
            j, in_class = i + 1, False
            while j < n and source[j] != "\n" and (in_class or source[j] != "/"):
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            blank(i + 1, j)
            i, prev = j + 1, "/"
        elif ch == "{":
            depth += 1
            i, prev = i + 1, ch
        elif ch == "}" and open_templates and open_templates[-1] == depth:
            open_templates.pop()
            i, opened = template_text(i + 1)
            if opened:
                open_templates.append(depth)
            prev = "`"
        elif ch == "}":
            depth -= 1
            i, prev = i + 1, ch
        elif ch.isalnum() or ch in "_$":
            match = re.match(r"[\w$]+", source[i:])
            assert match is not None
            prev = match.group()
            i += len(prev)
        else:
            if not ch.isspace():
                prev = ch
            i += 1
    return "".join(out)


def findings(path: Path, patterns: dict[str, re.Pattern[str]]) -> list[str]:
    """`file:line: what — the line` for every match of a pattern in the code of `path`."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for number, line in enumerate(code_only(source).splitlines(), start=1):
        for what, pattern in patterns.items():
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {what} — {lines[number - 1].strip()}")
    return found


def scripts() -> list[Path]:
    paths = sorted(JS.rglob("*.js"))
    assert paths, f"no scripts under {JS}"
    return paths


def test_every_request_goes_through_an_api_module() -> None:
    found = [f for path in scripts() if path not in API_FILES for f in findings(path, REQUESTS)]
    assert not found, "requests made outside static/js/api.js and static/js/training/api.js:\n" + "\n".join(found)


def test_the_stores_are_changed_only_through_their_setters() -> None:
    found = [f for path in scripts() if path not in STORE_FILES for f in findings(path, STORE_WRITES)]
    assert not found, "a store changed behind its setter (use store.set(...)):\n" + "\n".join(found)


def test_the_checks_find_what_they_look_for() -> None:
    """The api modules do make requests, as the scan sees them: the patterns are not blind."""
    assert any("fetch(" in f for f in findings(JS / "api.js", REQUESTS))
    lab = findings(JS / "training" / "api.js", REQUESTS)
    assert any("fetch(" in f for f in lab) and any("EventSource(" in f for f in lab)


@pytest.mark.parametrize("code, flagged", [
    ("const r = fetch(url);", ["fetch("]),
    ("// fetch(url) was here", []),
    ("/* new EventSource(url)\n   spanning lines */ x = 1;", []),
    ("const s = 'fetch(url) is how'; const t = \"store.x = 1\";", []),
    ("const t = `a ${fetch(url)} b`;", ["fetch("]),
    ("const t = `no fetch(url) here ${a + `nested ${b}`} still text fetch(`;", []),
    ("const re = /\\/\\/ fetch(/g; y = 1;", []),
    ("const half = a / 2; fetch(u); const q = b / c;", ["fetch("]),
    ("img.src = url;", [".src ="]),
    ("if (img.src === url) go();", []),
    ("store.cursor = 3;", ["store.<field> ="]),
    ("this.store.runs = runs;", ["store.<field> ="]),
    ("store.count += 1;", ["store.<field> ="]),
    ("if (store.cursor === 3) go();", []),
    ("Object.assign(store, changes);", ["Object.assign(store"]),
    ("Object.assign(ctx.store, changes);", ["Object.assign(store"]),
    ("Object.assign(ctx, { weight });", []),
    ("store.cancelling.add(id);", ["store.<field>.add("]),
    ("store.runs.get(id); store.set({ cursor: 1 });", []),
    ("delete store.picks;", ["delete store.<field>"]),
])
def test_the_scan_reads_code_not_comments_or_strings(code: str, flagged: list[str]) -> None:
    source = code_only(code)
    assert len(source) == len(code) and source.count("\n") == code.count("\n"), "line numbers must hold"
    found = sorted({what for line in source.splitlines() for what, pattern in {**REQUESTS, **STORE_WRITES}.items()
                    if pattern.search(line)})
    assert found == sorted(flagged), f"{code!r}: {found}"
