"""Phone numbers written without a country code, in the formats of many regions.

Presidio's phone recognizer (and :class:`~.recognizers.InternationalPhoneRecognizer` on top of
it) scans the text once per region with ``phonenumbers``' matcher and keeps only numbers valid
in that region, for eight regions. On text nobody here wrote, national numbers of other
countries ("0699 273 53 89", "067 501 36 56", "22 782310") and numbers with an extension
("915-081-1530x7274") were lost: a third of the phone numbers of the presidio-evaluator set.

:class:`NationalPhoneRecognizer` takes the other route: one regular expression finds
phone-shaped digit groups (cheap, once per text), and each candidate is parsed with
``phonenumbers`` in a configurable list of default regions (:data:`DEFAULT_PHONE_REGIONS`):

* with a phone cue nearby ("phone", "tel", "mobile", "fax", "call", "office", ...), a number
  that is *possible* (right length) in any of the regions is accepted;
* with a cue, a number written with ``+`` and a country calling code that exists is accepted
  whatever its length in that country's current plan (7 to 15 digits, as E.164 allows): old
  contact lines keep numbers from before a country lengthened its numbers ("+98 21 6022372");
* without a cue, a number written in groups ("084 864 9256", "450-468-0041") must be *valid*
  (in an allocated range) in one of the regions, and a bare run of digits must be taken whole
  as valid by ``phonenumbers``' matcher in one of Presidio's regions, whose VALID leniency also
  requires a national prefix where the region has one (an order or bug number rarely passes;
  this is what Presidio's recognizer accepted, in one parse per region instead of a scan).

Dates, times, IP addresses and dotted version numbers are never candidates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import phonenumbers
from presidio_analyzer import LocalRecognizer
from presidio_analyzer.predefined_recognizers import PhoneRecognizer
from privsynth.server.scrubbing.results import make_result

__all__ = ["DEFAULT_PHONE_REGIONS", "NationalPhoneRecognizer"]

#: Regions whose national formats are tried for a number without a country code: the
#: largest English-speaking ones and the European, Latin American and Asian ones most
#: present in business text. Configurable per scrubber (``phone_regions``).
DEFAULT_PHONE_REGIONS: tuple[str, ...] = (
    "US", "GB", "IE", "AU", "NZ", "ZA", "IN", "SG",
    "DE", "AT", "CH", "FR", "BE", "NL", "LU", "IT", "ES", "PT",
    "DK", "SE", "NO", "FI", "IS", "PL", "CZ", "SK", "HU", "SI", "HR", "RO", "BG", "GR",
    "EE", "LV", "LT", "UA", "RU", "TR", "IL", "BR", "MX", "AR", "JP", "CN", "KR",
)  # fmt: skip

#: Regions in which a bare run of digits with no cue is taken for a phone number when it is
#: valid there: Presidio's phone recognizer's regions (Canada shares the US plan).
_UNGROUPED_REGIONS = tuple(r for r in PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS if r != "CA")

_EXT = r"(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?"
# Digit groups separated by one space, dash, dot, spaced dash (with a cue only) or a
# parenthesised area code; 7 to 15 digits overall (checked after the match). No letters,
# slashes or further digits around it.
_CANDIDATE = re.compile(
    r"(?<![\w+/.:-])(?:\+\d{1,3}(?:[ .-]|\s-\s)?)?(?:\(\d{1,5}\)[ .-]?)?\d+"
    r"(?:(?:[ .-]|\s-\s|\)\s?)\d+){0,6}" + _EXT + r"(?![\w/@]|[.:-]\d)",
    re.IGNORECASE,
)
_DATE_OR_TIME = re.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d+\.\d+\.\d+\.\d+$"
)
_CUE = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|mob|cell|cellphone|fax|office|desk|direct|home|work"
    r"|call|called|calling|reach|dial|text|sms|whatsapp|contact|number|nr|ph|landline"
    r"|answering|registered|hotline|helpline)\b"
)
_YEARS = re.compile(r"(?:1[89]|20)\d\d\s?[-–]\s?(?:1[89]|20)\d\d")
_EXT_RE = re.compile(r"(?i)\s*(?:x|ext\.?|extension)\s*\d{1,6}$")


_DOTTED = re.compile(r"\(?\d{3}\)?\.\d{3}\.\d{4}|0\d(?:\.\d\d){4}")


def _valid_as_written(number: str) -> bool:
    """A bare run of digits that ``phonenumbers``' matcher takes whole as a valid number.

    The matcher's VALID leniency also checks what parsing alone does not, such as a national
    prefix the region requires ("8613661" parses as a valid German number without its 0).
    """
    for region in _UNGROUPED_REGIONS:
        for m in phonenumbers.PhoneNumberMatcher(
            number, region, leniency=phonenumbers.Leniency.VALID
        ):
            if m.start == 0 and m.end == len(number):
                return True
    return False


def _cue_near(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 40) : start]
    after = text[end : end + 20]
    return bool(_CUE.search(before) or _CUE.search(after))


class NationalPhoneRecognizer(LocalRecognizer):
    """Phone numbers without a country code, parsed in several regions' national formats."""

    SCORE = 0.4
    CUE_SCORE = 0.6
    NAME = "NationalPhoneRecognizer"

    def __init__(self, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> None:
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone regions: {', '.join(unknown)}")
        self.regions = tuple(regions)
        super().__init__(
            supported_entities=["PHONE_NUMBER"],
            supported_language="en",
            name=self.NAME,
        )

    def load(self) -> None:
        """Nothing to load: ``phonenumbers`` reads its metadata lazily."""

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Phone-shaped candidates accepted by region metadata (and a cue when bare)."""
        out = []
        for m in _CANDIDATE.finditer(text):
            raw = m.group(0)
            core = _EXT_RE.sub("", raw)
            digits = re.sub(r"\D", "", core)
            if not 7 <= len(digits) <= 15 or (
                _DATE_OR_TIME.search(core) and not _DOTTED.fullmatch(core)
            ):
                continue
            groups = re.findall(r"\d+", core)
            if _YEARS.fullmatch(core) or sum(len(g) == 1 for g in groups) > 1:
                continue  # "2002-2022", "3 1 1 1 1": year ranges and lists of digits
            grouped = bool(re.search(r"[ .()-]", core.lstrip("+")))
            if "." in core and not _DOTTED.fullmatch(core):
                continue  # dotted: only the US and French styles, never versions
            cue = _cue_near(text, m.start(), m.end())
            if not cue and " - " in core:
                continue  # spaced dashes ("+370 - 7 - 223510") also join ranges and scores
            if cue or grouped:
                if not self._accepted(core, strict=not cue):
                    continue
            elif not _valid_as_written(core):
                continue
            score = self.CUE_SCORE if cue else self.SCORE
            out.append(make_result(self.NAME, self.id, "PHONE_NUMBER", *m.span(), score=score))
        return out

    def _accepted(self, number: str, *, strict: bool) -> bool:
        if not strict and number.startswith("+"):
            try:
                parsed = phonenumbers.parse(number, None)
            except phonenumbers.NumberParseException:
                pass
            else:
                code = parsed.country_code or 0
                if phonenumbers.region_code_for_country_code(code) != "ZZ":
                    return True
        for region in self.regions:
            try:
                parsed = phonenumbers.parse(number, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed) or (
                not strict and phonenumbers.is_possible_number(parsed)
            ):
                return True
        return False
