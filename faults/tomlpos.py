"""Where each key of a TOML document is written: a small scanner beside `tomllib`.

`tomllib` parses but keeps no positions, so a plan error could only point at a table's header.
This scanner walks the same text (already accepted by `tomllib`, so it need not diagnose
anything) and records, for every key path, the 1-based line its key is written on:

    [[oid]]                      ("oid", 0)                 -> line of the header
    action = "fail"              ("oid", 0, "action")
    delay.low = 0.1              ("oid", 0, "delay"), ("oid", 0, "delay", "low")
    delay = { low = 0.1,         ("oid", 0, "delay", "low") -> the line of `low`
    adapters = [                 ("oid", 0, "adapters", 1)  -> the line of the element
      "a", "b" ]
    oid = [ { action = "x" } ]   ("oid", 0), ("oid", 0, "action")

Multi-line strings and arrays are skipped as values (their inner lines hold no keys), comments
are ignored, and quoted keys ("a.b" = 1) are one key. Only the first place a path is written is
kept (TOML forbids writing it twice).
"""

from __future__ import annotations

import contextlib

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}

Path = tuple[str | int, ...]


class KeyLines:
    """Key path -> line, built from TOML text by `scan`."""

    def __init__(self, lines: dict[Path, int]) -> None:
        self._lines = lines

    def line(self, *path: str | int) -> int | None:
        """The line `path` is written on, or the line of its nearest written ancestor."""
        p: Path = tuple(path)
        while p:
            if p in self._lines:
                return self._lines[p]
            p = p[:-1]
        return None

    def exact(self, *path: str | int) -> int | None:
        return self._lines.get(tuple(path))


def scan(text: str) -> KeyLines:
    """Key lines of `text`; a text the scanner cannot follow yields what it found so far."""
    scanner = _Scanner(text)
    with contextlib.suppress(_Stop, ValueError):  # only a text tomllib refuses gets here
        scanner.document()
    return KeyLines(scanner.lines)


class _Stop(Exception):
    pass


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[Path, int] = {}
        self.aot: dict[Path, int] = {}  # array-of-tables path -> index of its last element

    # -- characters ----------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.s[j] if j < len(self.s) else ""

    def take(self) -> str:
        if self.i >= len(self.s):
            raise _Stop
        c = self.s[self.i]
        self.i += 1
        if c == "\n":
            self.line += 1
        return c

    def blanks(self) -> None:
        """Spaces and tabs."""
        while self.peek() in (" ", "\t"):
            self.i += 1

    def gaps(self) -> None:
        """Spaces, tabs, newlines and comments (inside arrays and between statements)."""
        while True:
            c = self.peek()
            if c in (" ", "\t", "\r", "\n"):
                self.take()
            elif c == "#":
                self.comment()
            else:
                return

    def comment(self) -> None:
        while self.peek() not in ("\n", ""):
            self.i += 1

    def record(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    # -- statements ----------------------------------------------------------------------

    def document(self) -> None:
        prefix: Path = ()
        while True:
            self.gaps()
            c = self.peek()
            if c == "":
                return
            line = self.line
            if c == "[":
                self.take()
                array = self.peek() == "["
                if array:
                    self.take()
                keys = self.dotted_key()
                self.take()
                if array:
                    self.take()
                    base = self.resolve(keys)
                    self.record(base, line)
                    index = self.aot.get(base, -1) + 1
                    self.aot[base] = index
                    prefix = (*base, index)
                else:
                    prefix = self.resolve(keys)
                self.record(prefix, line)
            else:
                self.keyval(prefix)
            self.blanks()
            if self.peek() == "#":
                self.comment()

    def resolve(self, keys: list[str]) -> Path:
        """A header's keys as a path: an array of tables on the way means its last element."""
        path: Path = ()
        for n, key in enumerate(keys):
            path = (*path, key)
            if n < len(keys) - 1 and path in self.aot:
                path = (*path, self.aot[path])
        return path

    def keyval(self, prefix: Path) -> None:
        path = prefix
        for key in self.dotted_key(record_under=prefix):
            path = (*path, key)
        self.blanks()
        self.take()  # '='
        self.blanks()
        self.value(path)

    def dotted_key(self, record_under: Path | None = None) -> list[str]:
        keys: list[str] = []
        path = record_under
        while True:
            self.blanks()
            line = self.line
            keys.append(self.simple_key())
            if path is not None:
                path = (*path, keys[-1])
                self.record(path, line)
            self.blanks()
            if self.peek() != ".":
                return keys
            self.take()

    def simple_key(self) -> str:
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        start = self.i
        while self.peek() in _BARE and self.peek() != "":
            self.i += 1
        if self.i == start:
            raise _Stop
        return self.s[start:self.i]

    # -- values --------------------------------------------------------------------------

    def value(self, path: Path) -> None:
        c = self.peek()
        if c == '"':
            if self.s.startswith('"""', self.i):
                self.multiline('"""')
            else:
                self.basic_string()
        elif c == "'":
            if self.s.startswith("'''", self.i):
                self.multiline("'''")
            else:
                self.literal_string()
        elif c == "{":
            self.inline_table(path)
        elif c == "[":
            self.array(path)
        else:  # number, bool, date/time: up to a delimiter (dates may hold one space)
            while self.peek() not in ("", ",", "]", "}", "\n", "\r", "#"):
                if self.peek() in (" ", "\t") and not (self.peek(1).isdigit()
                                                       and self.s[self.i - 1].isdigit()):
                    break
                self.i += 1

    def inline_table(self, path: Path) -> None:
        self.take()  # '{'
        self.blanks()
        if self.peek() == "}":
            self.take()
            return
        while True:
            self.keyval(path)
            self.blanks()
            if self.take() == "}":
                return
            self.blanks()

    def array(self, path: Path) -> None:
        self.take()  # '['
        index = 0
        while True:
            self.gaps()
            if self.peek() == "]":
                self.take()
                return
            element = (*path, index)
            self.record(element, self.line)
            self.value(element)
            index += 1
            self.gaps()
            if self.take() == "]":
                return

    def basic_string(self) -> str:
        self.take()
        out: list[str] = []
        while True:
            c = self.take()
            if c == '"':
                return "".join(out)
            if c == "\\":
                e = self.take()
                if e in ("u", "U"):
                    digits = "".join(self.take() for _ in range(4 if e == "u" else 8))
                    out.append(chr(int(digits, 16)))
                else:
                    out.append(_ESCAPES.get(e, e))
            else:
                out.append(c)

    def literal_string(self) -> str:
        self.take()
        start = self.i
        while self.peek() not in ("'", ""):
            self.take()
        text = self.s[start:self.i]
        self.take()
        return text

    def multiline(self, quote: str) -> None:
        for _ in range(3):
            self.take()
        while True:
            if self.s.startswith(quote, self.i):
                # up to two quotes may end the content right before the closing three
                while self.s.startswith(quote[0], self.i + 3):
                    self.take()
                for _ in range(3):
                    self.take()
                return
            c = self.take()
            if c == "\\" and quote == '"""':
                self.take()
