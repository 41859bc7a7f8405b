"""Which characters must not reach a printed line.

One rule for what the server refuses in a label or display name and for what the CLI masks
when it prints one.

A label or display name is printed in tables and terminals. A C0/C1 control (NUL, newline,
tab, ESC) breaks the line or, as an escape sequence, drives the reader's terminal; a line
separator breaks it too; a bidi override reverses what the reader sees.
"""

from __future__ import annotations

import unicodedata

__all__ = ["breaks_line", "printable"]

#: Line separators and bidi embeddings, overrides and isolates (category Cf/Zl/Zp).
_LINE_BREAKERS = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def breaks_line(char: str) -> bool:
    """True for a control character, a line separator or a bidi override."""
    return unicodedata.category(char) == "Cc" or char in _LINE_BREAKERS


def printable(text: str) -> str:
    """``text`` with every character :func:`breaks_line` names as ``?``."""
    return "".join("?" if breaks_line(c) else c for c in text)
