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

import re
from collections import Counter
from dataclasses import replace

from privsynth.server.scrubbing.scrubber import ScrubResult
from privsynth.server.scrubbing.strategies import Replacer

__all__ = ["EMAIL", "DenyList"]


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


class DenyList:
    """Names and addresses a message's headers reveal, replaced wherever they recur in it.

    Exact and message-local: only what the headers name, only in the same message. Full names
    and addresses match case-insensitively with any spacing (and addresses in their
    ``at``/``dot`` spellings); a first or last word alone matches only capitalised as in the
    header (or in capitals), so "Will Smith" does not take "will" out of every sentence.
    """

    def __init__(self) -> None:
        self._names: dict[str, None] = {}
        self._words: dict[str, None] = {}
        self._addresses: dict[str, None] = {}
        self._compiled: tuple[re.Pattern[str] | None, re.Pattern[str] | None] | None = None

    def __bool__(self) -> bool:
        return bool(self._names or self._words or self._addresses)

    def add_name(self, name: str) -> None:
        """Deny a display name: whole, reordered if written "Last, First", and word by word."""
        for addr in EMAIL.findall(name):
            self.add_address(addr)
        name = EMAIL.sub(" ", name)
        name = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", name).strip(" \t\"'<>")
        words = [w for w in _NAME_WORD.findall(name) if len(w) >= 2]
        if not words:
            return
        self._compiled = None
        if len(name.split()) >= 2:
            self._names[" ".join(name.split())] = None
            if len(words) >= 2:
                self._names[" ".join(words)] = None
            if "," in name:
                last, _, first = name.partition(",")
                self._names[" ".join([*first.split(), *last.split()])] = None
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
        if "@" in address and len(address) >= 3:
            self._addresses[address] = None
            self._compiled = None

    def _patterns(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        if self._compiled is None:
            alts: list[str] = []
            for a in sorted(self._addresses, key=len, reverse=True):
                local, _, domain = a.rpartition("@")
                dom = _DOT.join(re.escape(p) for p in domain.split("."))
                alts.append(f"(?P<a{len(alts)}>{_L}{re.escape(local)}{_AT}{dom}{_R})")
            for name in sorted(self._names, key=len, reverse=True):
                alts.append(_L + r"\s+".join(re.escape(w) for w in name.split()) + _R)
            folded = re.compile("|".join(alts), re.I) if alts else None
            words = sorted({v for w in self._words for v in (w, w.upper())}, key=len, reverse=True)
            exact = (
                re.compile(_L + "(?:" + "|".join(map(re.escape, words)) + ")" + _R)
                if words
                else None
            )
            self._compiled = (folded, exact)
        return self._compiled

    def find(
        self, text: str, protected: tuple[tuple[int, int], ...] = ()
    ) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, entity type)`` matches, outside ``protected`` spans."""
        folded, exact = self._patterns()
        found: list[tuple[int, int, str]] = []
        if folded is not None:
            for m in folded.finditer(text):
                kind = "EMAIL_ADDRESS" if m.lastgroup else "PERSON"
                found.append((m.start(), m.end(), kind))
        if exact is not None:
            found.extend((m.start(), m.end(), "PERSON") for m in exact.finditer(text))
        found.sort(key=lambda f: (f[0], f[0] - f[1]))
        out: list[tuple[int, int, str]] = []
        end = -1
        for s, e, kind in found:
            if s < end or s == e or any(s < pe and ps < e for ps, pe in protected):
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
        shifts: list[tuple[int, int]] = []  # (original position, length change before it)
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
            shifts.append((e, delta))
            counts[kind] += 1
            strategies[replacer.policy.strategy_for(kind).name] += 1
            at = e
        out.append(text[at:])

        def moved(pos: int) -> int:
            d = 0
            for end, total in shifts:
                if end <= pos:
                    d = total
            return pos + d

        old = [(moved(s), moved(e)) for s, e in result.surrogate_spans]
        return replace(
            result,
            text="".join(out),
            entity_counts=dict(counts),
            strategy_counts=dict(strategies),
            surrogate_spans=tuple(sorted(old + new_spans)),
        )
