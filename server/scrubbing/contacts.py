"""Names by their place next to contact data: "Name <address>", sign-offs, quote initials.

In real text (AUTHORS files, changelogs, copyright files, mail) most names stand in a few fixed
positions, whatever the name is: before an address in angle brackets ("Andreas Metzler
<ametzler@...>", " -- intrigeri <intrigeri@debian.org>", "Trek <trek00@inbox.ru>"), alone on a
sign-off line at the end of a mail ("-Dave", "--Hal"), and as the initials of a quote prefix
("BM> I'd like ..."). A handle or a name from no lexicon ("Zefram", "data-man") is found
there as well as a common one. What stands before a role or list address and is no person
("Debian Python Team <team+python@...>") is left alone by the over-scrubbing policy
(:mod:`.not_personal`), and so is a bare product name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from presidio_analyzer import LocalRecognizer
from privsynth.server.scrubbing.name_lexicon import load as load_name_asset
from privsynth.server.scrubbing.not_personal import not_personal
from privsynth.server.scrubbing.results import make_result

__all__ = ["ContactNameRecognizer"]

# A display name: 1-5 words (letters, apostrophes, dots, dashes, digits inside handles),
# optionally quoted, right before "<...@...>" or "<login>" on the same line.
_BEFORE_ADDRESS = re.compile(
    r"""(?P<name>"[^"\n<>@]{1,60}"|(?:[^\W_][\w'’.-]*[ \t]+){0,4}[^\W_][\w'’.-]*)"""
    r"""[ \t]*<[\w.+-]+(?:@[\w.-]+|(?:[ \t]+(?:at|\[at\]|\(at\))[ \t]+[\w.-]+)"""
    r"""|(?:[ \t]+[\w-]+){1,3}[ \t]+[a-z]{2,4})?>"""
)
_SIGN_OFF = re.compile(r"(?m)^[ \t]*-{1,2}[ \t]?(?P<name>[A-Za-z][a-z]{1,15})[ \t]*$")
_QUOTE_INITIALS = re.compile(r"(?m)^[ \t]*(?P<name>[A-Z]{2,3})>")
# Words that end what a display name can be: a header field or list marker before the name.
_LEAD = re.compile(r"(?i)^(?:from|to|cc|by|and|or|author|maintainer|copyright|thanks|to)\b\s*")
_LEADING_NUMBERS = re.compile(r"^(?:[^\w]*\d[\d,.\s-]*)+")
_ROLE_WORDS = frozenset(
    [
        "team",
        "group",
        "project",
        "list",
        "lists",
        "maintainers",
        "developers",
        "support",
        "admin",
        "administrator",
        "root",
        "postmaster",
        "webmaster",
        "daemon",
        "mailer",
        "noreply",
        "no-reply",
        "bot",
        "robot",
        "qa",
        "security",
        "packaging",
        "debian",
        "ubuntu",
        "users",
        "owner",
        "owners",
        "help",
        "info",
        "sales",
        "office",
        "announce",
        "news",
        "digest",
    ]
)


_PARTICLES = frozenset(
    [
        "van",
        "von",
        "der",
        "den",
        "de",
        "la",
        "le",
        "del",
        "della",
        "di",
        "da",
        "dos",
        "du",
        "d'",
        "bin",
        "al",
        "el",
        "ter",
    ]
)


def _capitalised(token: str) -> bool:
    bare = token.strip("'\"()[]")
    return bare[:1].isupper() or ("'" in bare and bare.rsplit("'", 1)[-1][:1].isupper())


def _name_tail(words: str) -> str:
    """The name at the end of a run of words ("... was written by Peter Tobias").

    When any word is capitalised: the longest tail of capitalised words and particles;
    otherwise (a lower-case handle such as "intrigeri") the last word.
    """
    tokens = words.split()
    if not any(_capitalised(t) for t in tokens):
        return tokens[-1] if tokens else ""
    tail: list[str] = []
    for tok in reversed(tokens):
        if not (_capitalised(tok) or tok.casefold() in _PARTICLES):
            break
        tail.insert(0, tok)
    while tail and tail[0].casefold() in _PARTICLES:
        tail.pop(0)
    return " ".join(tail)


class ContactNameRecognizer(LocalRecognizer):
    """PERSON spans by position: before an address, on a sign-off line, as quote initials."""

    SCORE = 0.5
    NAME = "ContactNameRecognizer"

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], supported_language="en", name=self.NAME)

    def load(self) -> None:
        """Nothing to load: compiled patterns."""

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Names before addresses, on sign-off lines, and as quote-prefix initials."""
        out = []
        if "<" in text:
            for m in _BEFORE_ADDRESS.finditer(text):
                start, end = m.span("name")
                name = m.group("name")
                if name.startswith('"'):
                    start, end = start + 1, end - 1
                    name = name[1:-1]
                lead = _LEAD.match(name)
                if lead is not None:
                    start += lead.end()
                    name = name[lead.end() :]
                name = _name_tail(_LEADING_NUMBERS.sub("", name).strip())
                if not name or not self._personal(name):
                    continue
                # The tail's words, however they were spaced, at the end of the name run.
                words = r"\s+".join(map(re.escape, name.split()))
                matches = list(re.finditer(words, text[start:end]))
                if matches:
                    where = matches[-1]
                    out.append(self._result(start + where.start(), start + where.end()))
        for pattern in (_SIGN_OFF, _QUOTE_INITIALS):
            for m in pattern.finditer(text):
                if not not_personal(m.group("name"), software=False):
                    out.append(self._result(*m.span("name")))
        return out

    @staticmethod
    def _personal(name: str) -> bool:
        words = name.casefold().replace("-", " ").split()
        if not words or any(w in _ROLE_WORDS for w in words):
            return False
        return not not_personal(name, load_name_asset().first)

    def _result(self, start: int, end: int) -> Any:
        return make_result(self.NAME, self.id, "PERSON", start, end, score=self.SCORE)
