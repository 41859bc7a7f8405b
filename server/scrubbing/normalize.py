r"""Text normalisation before PII detection, with offsets mapped back to the original text.

Detection runs on a normalised copy of each text, so invisible or look-alike characters cannot
hide an identifier from it: zero-width characters (``J\u200bohn``), bidirectional controls and
soft hyphens are removed, and NFKC folds compatibility forms (full-width letters, ligatures,
superscript digits) into the characters the recognizers know. Replacement then
happens on the *original* text: :class:`Normalized` maps every span found in the copy back to
the original characters it came from, so a replaced span also covers the invisible characters
inside it and no fragment of the identifier survives.

Escaped line breaks (a backslash and ``n``, ``r`` or ``t``, as in JSON-escaped logs and
exports) read as a space and a line break: "...Belgium\\n0484 84 01 64" would otherwise hide the
phone number behind the letter ``n``. The replacement keeps the length, so offsets hold.

Character escapes that plain-text sources write instead of non-ASCII letters are decoded, each
escape mapped to the one character it stands for: POSIX locale and charmap symbols
(``J<U00F8>rgens``, as in glibc's locale sources) and the RFC 1345 mnemonics for the letter ø
in names (``Jo//rgens``, ``Ko/benhavn``). Without that a street or person name with one such letter
splits into fragments no recognizer takes for a name.

NFKC is applied per cluster (a character plus the combining marks after it), which keeps the
offset map exact; it equals whole-string NFKC except for rare cross-cluster compositions.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["INVISIBLE", "Normalized", "normalize_for_analysis"]

INVISIBLE = frozenset(
    "\u00ad"  # soft hyphen
    "\u180e"  # Mongolian vowel separator
    "\u200b\u200c\u200d"  # zero-width space, non-joiner, joiner
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner, invisible operators
    "\ufeff"  # zero-width no-break space (BOM)
    "\u061c\u200e\u200f"  # Arabic letter mark, left-to-right and right-to-left marks
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # bidi isolates
)
"""Characters removed before analysis: zero-width, bidi controls, soft hyphen."""


@dataclass(frozen=True)
class Normalized:
    """A normalised text and, per character of it, the original span it came from.

    Attributes:
        text: What the analyzer sees.
        starts: ``starts[i]`` is where the original cluster behind ``text[i]`` starts.
        ends: ``ends[i]`` is where that cluster ends (exclusive).
        identity: The text needed no change (then the maps are empty and offsets are kept).
    """

    text: str
    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()
    identity: bool = True

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the normalised span ``[start, end)``."""
        if self.identity:
            return start, end
        if not self.starts:  # the whole text was invisible characters
            return 0, 0
        last = len(self.starts) - 1
        if end <= start:
            pos = self.starts[min(start, last)] if start <= last else self.ends[last]
            return pos, pos
        return self.starts[min(start, last)], self.ends[min(end - 1, last)]


_ESCAPES = {"\\n": " \n", "\\r": " \n", "\\t": "  "}


def _unescape(text: str) -> str:
    """Escaped line breaks and tabs as whitespace of the same length."""
    if "\\" not in text:
        return text
    for escaped, plain in _ESCAPES.items():
        text = text.replace(escaped, plain)
    return text


_CHARACTER_ESCAPE = re.compile(
    r"<U(?P<hex>[0-9A-Fa-f]{4,8})>|(?<=[^\W\d_])(?P<slash>[oO])//(?=[^\W\d_])"
    r"|(?<=\b[A-Z])(?P<one>o)/(?=[a-z]{3,}\b(?!/))|(?<=\b[A-Z][a-z])(?P<two>o)/(?=[a-z]{3,}\b(?!/))"
)
"""A POSIX character symbol (``<U00F8>``) or the RFC 1345 mnemonic for ø inside a word: ``o//``
anywhere, ``o/`` only after the first one or two letters of a capitalised word and before
lower-case letters ("Ko/benhavn", "Jo/rgens"; not "to/from", "I/O", "Bolzano/Bozen")."""


def _escape_at(text: str, i: int) -> tuple[str, int] | None:
    """The character an escape at ``text[i]`` stands for, and where the escape ends."""
    m = _CHARACTER_ESCAPE.match(text, i)
    if m is None:
        return None
    if m.group("slash"):
        return ("ø" if m.group("slash") == "o" else "Ø"), m.end()
    if m.group("one") or m.group("two"):
        return "ø", m.end()
    code = int(m.group("hex"), 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    char = chr(code)
    if char in INVISIBLE or not char.isprintable():
        return None
    return char, m.end()


def normalize_for_analysis(text: str) -> Normalized:
    """Remove :data:`INVISIBLE` characters, decode escapes and apply NFKC, keeping an offset map."""
    escaped = ("<U" in text or "o/" in text or "O/" in text) and _CHARACTER_ESCAPE.search(
        text
    ) is not None
    if not escaped and (
        text.isascii()
        or (unicodedata.is_normalized("NFKC", text) and not any(c in INVISIBLE for c in text))
    ):
        return Normalized(_unescape(text))
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in INVISIBLE:
            i += 1
            continue
        decoded = _escape_at(text, i) if escaped and text[i] in "<oO" else None
        if decoded is not None:
            cluster, j = decoded  # an escape stands for one character
        else:
            j = i + 1
            while j < n and unicodedata.combining(text[j]) and text[j] not in INVISIBLE:
                j += 1
            cluster = text[i:j]
        folded = unicodedata.normalize("NFKC", cluster)
        out.append(folded)
        starts.extend([i] * len(folded))
        ends.extend([j] * len(folded))
        i = j
    return Normalized(_unescape("".join(out)), tuple(starts), tuple(ends), identity=False)
