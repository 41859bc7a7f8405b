"""The deny list: names and addresses a message's own headers reveal, replaced in its texts.

An analyzer finds names by their look and context; a quote prefix (``Guido>``), an attribution
(``Guido wrote:``) or a signature gives it neither. But a message says who wrote it and to
whom: its From/To/Cc display names and addresses. :class:`DenyList` holds those values for one
message and replaces them wherever they recur in that message, through the same
:class:`~privsynth.server.scrubbing.strategies.Replacer` as the analyzer's spans, so a keyed
pseudonym is the same either way. It runs on the analyzer's output and skips the surrogates the
analyzer wrote. Used by :mod:`privsynth.server.scrubbing.mail` for files and uploads.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import replace

from privsynth.server.scrubbing.scrubber import ScrubResult
from privsynth.server.scrubbing.strategies import Replacer

__all__ = ["EMAIL", "MAX_DENIED", "DenyList"]

MAX_DENIED = 100
"""Names, and addresses, one message may deny (each): the first ones its headers list. A
header of 1,000 mailboxes once made one record's deny list 3,000 patterns and 8 s of work."""


#: Words that make a display name an organisation or a role ("Red Hat Network", "Mail Delivery
#: System"): such a name is denied whole, never word by word. Also honorifics and particles,
#: which are never denied alone.
_NOT_ALONE = frozenset(
    {
        "admin",
        "administrator",
        "alert",
        "alerts",
        "bank",
        "billing",
        "board",
        "bot",
        "center",
        "centre",
        "club",
        "company",
        "corp",
        "customer",
        "daemon",
        "delivery",
        "department",
        "dept",
        "desk",
        "digest",
        "editor",
        "editors",
        "group",
        "help",
        "info",
        "inc",
        "jr",
        "list",
        "lists",
        "llc",
        "ltd",
        "mail",
        "mailer",
        "mailing",
        "manager",
        "marketing",
        "member",
        "members",
        "network",
        "news",
        "newsletter",
        "no-reply",
        "noreply",
        "notification",
        "notifications",
        "office",
        "online",
        "postmaster",
        "project",
        "reply",
        "sales",
        "security",
        "service",
        "services",
        "shop",
        "sr",
        "staff",
        "store",
        "subscription",
        "subsystem",
        "support",
        "system",
        "team",
        "the",
        "update",
        "updates",
        "web",
        "webmaster",
        "weekly",
        "daily",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sir",
        "van",
        "von",
        "de",
        "der",
        "den",
        "la",
        "le",
        "da",
        "di",
        "del",
        "dos",
        "du",
        "st",
    }
)
_NAME_WORD = re.compile(r"[^\W\d_](?:[\w'\u2019-]*[^\W_])?")
#: An e-mail address (inside a display name, a quoted header line).
EMAIL = re.compile(r"[\w.+=!#$%&'*/?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_AT = r"(?:\s*@\s*|\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+)"
_DOT = r"(?:\.|\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+)"
#: Name boundaries: letters and digits only (an underscore separates, as in file names).
_L, _R = r"(?<![^\W_])", r"(?![^\W_])"
#: A run of letters and digits: every denied value that starts with one starts a match only at
#: the start of such a run in the text, and only at a run equal to its own first run.
_RUN = re.compile(r"[^\W_]+")


class DenyList:
    """Names and addresses a message's headers reveal, replaced wherever they recur in it.

    Exact and message-local: only what the headers name, only in the same message. Full names
    and addresses match case-insensitively with any spacing (and addresses in their
    ``at``/``dot`` spellings); a first or last word alone matches only capitalised as in the
    header (or in capitals), so "Will Smith" does not take "will" out of every sentence.

    Matching is indexed, so its cost grows with the text and the matches, not with the text
    times the values: each value's pattern is tried only where a run of letters and digits in
    the text equals the value's first one (one alternation of every value, tried at every
    position, took 8 s on one 64 KB message of 1,000 recipients and held the server's GIL).
    At most :data:`MAX_DENIED` names and as many addresses are kept.
    """

    def __init__(self) -> None:
        self._names: dict[str, None] = {}
        self._words: dict[str, None] = {}
        self._addresses: dict[str, None] = {}
        self._index: _Index | None = None

    def __bool__(self) -> bool:
        return bool(self._names or self._words or self._addresses)

    def add_name(self, name: str) -> None:
        """Deny a display name: whole, reordered if written "Last, First", and word by word."""
        for addr in EMAIL.findall(name):
            self.add_address(addr)
        name = EMAIL.sub(" ", name)
        name = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", name).strip(" \t\"'<>")
        words = [w for w in _NAME_WORD.findall(name) if len(w) >= 2]
        if not words or len(self._names) >= MAX_DENIED:
            return
        self._index = None
        if len(name.split()) >= 2:
            forms = [" ".join(name.split())]
            if len(words) >= 2:
                forms.append(" ".join(words))
            if "," in name:
                last, _, first = name.partition(",")
                forms.append(" ".join([*first.split(), *last.split()]))
            for form in forms:
                if len(self._names) < MAX_DENIED:
                    self._names[form] = None
        if any(w.lower() in _NOT_ALONE for w in words):
            return
        alone = [words[0], words[-1]]
        if "," in name:  # "Last, First": the first word of each side
            before = _NAME_WORD.findall(name.partition(",")[2])
            alone = [words[0], *before[:1]]
        for w in alone:
            if w[0].isupper() and len(w) >= 2:
                self._words[w] = None

    def add_address(self, address: str) -> None:
        """Deny an address, in its plain and its ``at``/``dot`` spellings."""
        address = address.strip().strip("<>")
        if "@" in address and len(address) >= 3 and len(self._addresses) < MAX_DENIED:
            self._addresses[address] = None
            self._index = None

    def _patterns(self) -> _Index:
        if self._index is None:
            index = _Index()
            # Longest first: within a key, the first value that matches at a place wins.
            for a in sorted(self._addresses, key=len, reverse=True):
                local, _, domain = a.rpartition("@")
                dom = _DOT.join(re.escape(p) for p in domain.split("."))
                pattern = f"{_L}{re.escape(local)}{_AT}{dom}{_R}"
                index.add(local, pattern, "EMAIL_ADDRESS", folded=True)
            for name in sorted(self._names, key=len, reverse=True):
                pattern = _L + r"\s+".join(re.escape(w) for w in name.split()) + _R
                index.add(name, pattern, "PERSON", folded=True)
            words = {v for w in self._words for v in (w, w.upper())}
            for word in sorted(words, key=len, reverse=True):
                index.add(word, _L + re.escape(word) + _R, "PERSON", folded=False)
            self._index = index
        return self._index

    def find(
        self, text: str, protected: tuple[tuple[int, int], ...] = ()
    ) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, entity type)`` matches, outside ``protected`` spans.

        Where several values match at one place, the longest wins (an address before a name
        of the same length).
        """
        found = self._patterns().matches(text)
        found.sort(key=lambda f: (f[0], f[0] - f[1], f[2] != "EMAIL_ADDRESS"))
        spans = sorted(protected)
        starts = [ps for ps, _ in spans]
        out: list[tuple[int, int, str]] = []
        end = -1
        for s, e, kind in found:
            if s < end or s == e or _overlaps(spans, starts, s, e):
                continue
            out.append((s, e, kind))
            end = e
        return out

    def apply(self, result: ScrubResult, replacer: Replacer) -> ScrubResult:
        """``result`` with every match replaced through ``replacer``; counts and spans updated."""
        if not self:
            return result
        text = result.text
        found = self.find(text, result.surrogate_spans)
        if not found:
            return result
        out: list[str] = []
        new_spans: list[tuple[int, int]] = []
        ends: list[int] = []  # each replaced span's original end ...
        shifts: list[int] = []  # ... and the length change up to and including it
        at = length = delta = 0
        counts = Counter(result.entity_counts)
        strategies = Counter(result.strategy_counts)
        for s, e, kind in found:
            out.append(text[at:s])
            length += s - at
            new = replacer.replace(kind, text[s:e])
            out.append(new)
            new_spans.append((length, length + len(new)))
            length += len(new)
            delta += len(new) - (e - s)
            ends.append(e)
            shifts.append(delta)
            counts[kind] += 1
            strategies[replacer.policy.strategy_for(kind).name] += 1
            at = e
        out.append(text[at:])

        def moved(pos: int) -> int:
            i = bisect.bisect_right(ends, pos)  # replaced spans that end at or before pos
            return pos + (shifts[i - 1] if i else 0)

        old = [(moved(s), moved(e)) for s, e in result.surrogate_spans]
        return replace(
            result,
            text="".join(out),
            entity_counts=dict(counts),
            strategy_counts=dict(strategies),
            surrogate_spans=tuple(sorted(old + new_spans)),
        )


def _overlaps(spans: list[tuple[int, int]], starts: list[int], s: int, e: int) -> bool:
    """Whether ``[s, e)`` overlaps one of ``spans`` (sorted, not overlapping each other)."""
    i = bisect.bisect_left(starts, e)  # spans starting before e ...
    return i > 0 and spans[i - 1][1] > s  # ... the last of which ends after s


class _Index:
    """Denied values' patterns, keyed by their first run of letters and digits.

    Case-insensitive values are keyed by the run's case fold, exact ones by the run itself;
    a value that does not start with a letter or digit (``+x@host``) is searched for on its own.
    The values of one key become one alternation, in the order they were added (the first
    that matches at a place wins), so a run is one regex call however many values share it.
    """

    def __init__(self) -> None:
        self._parts: dict[tuple[bool, str], list[tuple[str, str]]] = {}
        self._compiled: dict[tuple[bool, str], re.Pattern[str]] | None = None

    def add(self, value: str, pattern: str, kind: str, *, folded: bool) -> None:
        first = _RUN.match(value)
        key = "" if first is None else _fold(first.group()) if folded else first.group()
        self._parts.setdefault((folded, key), []).append((pattern, kind))
        self._compiled = None

    def _patterns(self) -> dict[tuple[bool, str], re.Pattern[str]]:
        if self._compiled is None:
            self._compiled = {}
            for (folded, key), parts in self._parts.items():
                alts = [
                    f"(?P<a{i}>{p})" if kind == "EMAIL_ADDRESS" else p
                    for i, (p, kind) in enumerate(parts)
                ]
                self._compiled[folded, key] = re.compile("|".join(alts), re.I if folded else 0)
        return self._compiled

    def matches(self, text: str) -> list[tuple[int, int, str]]:
        """What the unindexed scans found, as ``(start, end, entity type)``.

        That is one ``finditer`` of every case-insensitive value and one of every exact word:
        each left to right, taking no match that starts inside its last one (the two scans'
        matches may overlap each other).
        """
        patterns = self._patterns()
        at: dict[bool, list[tuple[int, int, str]]] = {True: [], False: []}  # one per run
        for run in _RUN.finditer(text):
            word = run.group()
            for folded, key in ((True, _fold(word)), (False, word)):
                compiled = patterns.get((folded, key))
                m = compiled.match(text, run.start()) if compiled is not None else None
                if m is not None:
                    at[folded].append((m.start(), m.end(), _kind(m)))
        return [
            *_scan(text, at[True], patterns.get((True, ""))),
            *_scan(text, at[False], None),
        ]


def _fold(word: str) -> str:
    """``word`` as ``re.IGNORECASE`` compares it: case-folded, and dotless i as i.

    ``re`` matches "ı" with "I" and "i", which ``casefold`` keeps apart.
    """
    return word.casefold().replace("ı", "i")


def _scan(
    text: str, keyed: list[tuple[int, int, str]], unkeyed: re.Pattern[str] | None
) -> list[tuple[int, int, str]]:
    """``finditer`` over the values, from their matches at each run.

    ``keyed`` holds the match at each run (in order); ``unkeyed`` matches the values that
    start with a sign, wherever they start.
    """
    out: list[tuple[int, int, str]] = []
    pos = i = 0
    while True:
        while i < len(keyed) and keyed[i][0] < pos:
            i += 1
        m = unkeyed.search(text, pos) if unkeyed is not None else None
        if m is not None and (i == len(keyed) or m.start() < keyed[i][0]):
            found = (m.start(), m.end(), _kind(m))
        elif i < len(keyed):
            found = keyed[i]
        else:
            return out
        out.append(found)
        pos = max(found[1], found[0] + 1)


def _kind(m: re.Match[str]) -> str:
    """An address's alternative is a named group; a name's is not."""
    return "EMAIL_ADDRESS" if m.lastgroup else "PERSON"
