"""One way for a bench command to write its `--json FILE`: the result, or one line why not."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def write_json(prog: str, path: Path, data: Any) -> bool:
    """Write `data` to `path` as indented JSON; on failure print one line (`prog: cannot
    write …`) to stderr and return False (the caller exits 2)."""
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"{prog}: cannot write {str(path)!r}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def report(prog: str, text: str, path: Path | None, data: Any) -> int:
    """A bench command's ending: print `text`, write `data` to `path` (``--json``) if given;
    the exit status (2 if the file could not be written)."""
    print(text)
    if path is not None and not write_json(prog, path, data):
        return 2
    return 0
