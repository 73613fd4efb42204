"""Column-name normalisation shared by the brief and the loaders (private)."""

from __future__ import annotations

import difflib
import re

_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalize_column_name(name: str) -> str:
    """Return the snake_case form of a column name: ``"Education-Num"`` -> ``"education_num"``.

    ONNX input names keep only ``[A-Za-z0-9_]`` (skl2onnx renames the rest), so workbench uses these names
    from the moment data is loaded. A name that would start with a digit gets a ``c_`` prefix.
    """
    s = _CAMEL.sub("_", str(name).strip())
    s = _NON_WORD.sub("_", s).strip("_").lower()
    if not s:
        s = "column"
    if s[0].isdigit():
        s = f"c_{s}"
    return s


def suggest(name: str, choices: list[str]) -> str:
    """A ' Did you mean ...?' suffix, or an empty string."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
