"""Extra Presidio recognizers and result refinement that raise PII recall without noise.

Measured with ``benchmarks/pii_quality.py`` (Presidio 2.2.366, spaCy ``en_core_web_sm``),
plain Presidio misses street addresses (it has no recognizer; only a city gets redacted),
Mastercard 2-series, 19-digit Visa and 12-digit Maestro numbers, account numbers, many
non-English and lower-cased names; its spaCy DATE_TIME fires on "this morning", "several
years" or "Friday"; it tags US phone numbers as UK_NHS; and, worst, spaCy's NER labels
identifiers as DATE_TIME, PERSON or LOCATION at score 0.85, which beats the right pattern
result (0.4-0.6), so a phone number becomes ``<DATE_TIME>``. This module fixes each of these:

* :class:`StreetAddressRecognizer` - house number, street and suffix, unit, and the city /
  region / postcode tail when present (US, UK, AU/CA, German, Dutch and French styles).
* :class:`LuhnCardRecognizer` - 12-19 digit numbers in card groupings, accepted only with a
  known issuer prefix for that length and a valid Luhn check (replaces Presidio's, whose
  regex predates the 2-series and misses 12- and 19-digit cards).
* :class:`AccountNumberRecognizer` - numbers introduced by "account", "acct", "member ID",
  "policy", "MRN", "record" and similar cue words (span: the number only).
* :class:`ContextNhsRecognizer` - UK NHS numbers only with an NHS cue nearby: the bare
  10-digit mod-11 check passes for about one US phone number in eleven.
* :class:`PersonCueRecognizer` and :class:`NameLexiconRecognizer` - names after cue words
  ("Dear", "Dr.", "my name is", "spoke with", a sign-off line, ...) and names made of a known
  first name plus a surname, including lower-cased ones, from Faker's name lists.
* :func:`refine_results`, run by :class:`RefiningAnalyzerEngine` after all recognizers:
  drops DATE_TIME spans that are not explicit calendar dates, drops NER spans that contain
  digits or URL/e-mail characters, and drops an NER span where a pattern recognizer found a
  different entity on the same characters (a validated pattern beats a statistical guess).

Configuration lives in code constants rather than YAML on purpose: the patterns and cue lists
are code (regular expressions that interact), each is pinned by tests in
``tests/unit/test_recognizers.py`` and by the benchmark, and a YAML knob would let them change
without either. Nothing here logs or raises with matched text.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from phonenumbers import phonenumbermatcher as _phonenumbermatcher
from presidio_analyzer import (
    AnalyzerEngine,
    LocalRecognizer,
    Pattern,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import NhsRecognizer, PhoneRecognizer
from privsynth.server.scrubbing.addresses import AddressBlockRecognizer, countries
from privsynth.server.scrubbing.contacts import ContactNameRecognizer
from privsynth.server.scrubbing.name_lexicon import load as load_name_asset
from privsynth.server.scrubbing.not_personal import (
    FILE_EXTENSIONS,
    LEGAL_FORM,
    ORGANISATION_WORD,
    is_file_name,
    not_personal,
)
from privsynth.server.scrubbing.obfuscated import ObfuscatedEmailRecognizer
from privsynth.server.scrubbing.phones import DEFAULT_PHONE_REGIONS, NationalPhoneRecognizer
from privsynth.server.scrubbing.results import make_result

__all__ = [
    "AccountNumberRecognizer",
    "ContextNhsRecognizer",
    "FastContextAnalyzerEngine",
    "InternationalPhoneRecognizer",
    "LuhnCardRecognizer",
    "NameLexiconRecognizer",
    "PersonCueRecognizer",
    "RefiningAnalyzerEngine",
    "StreetAddressRecognizer",
    "TextDateRecognizer",
    "apply_policy",
    "configure_registry",
    "is_explicit_date",
    "luhn_valid",
    "name_lexicon",
    "refine_results",
]

logger = logging.getLogger(__name__)

#: Bumped whenever detection behaviour changes; scrub reports name it.
RECOGNIZERS_VERSION = "1"

#: Name of Presidio's NER recognizer (spaCy); its results are the ones refined.
NER_RECOGNIZER = "SpacyRecognizer"


def _result(recognizer: Any, entity: str, start: int, end: int, score: float) -> Any:
    return make_result(recognizer.name, recognizer.id, entity, start, end, score=score)


# ----------------------------------------------------------------------------------------------
# Dates
# ----------------------------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_EXPLICIT_DATE = re.compile(
    rf"""(?ix)
    \b\d{{1,4}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b          # 03/04/2021, 2021-03-04, 04.03.2021
    | \b(?:0?[1-9]|1[0-2])/(?:19|20)\d{{2}}\b           # 03/2021
    | \b{_MONTH}\s+{_DAY}\b                             # March 3, Mar 3rd
    | \b{_DAY}\s+(?:of\s+)?{_MONTH}(?![a-z])            # 3 March, 3rd of March
    | \b{_MONTH},?\s+(?:19|20)\d{{2}}\b                 # March 2021
    | \b{_DAY}-{_MONTH}-\d{{2,4}}\b                     # 03-MAR-2021
    | \b\d{{4}}-\d{{2}}-\d{{2}}T\d                      # ISO timestamps
    """
)


def is_explicit_date(text: str) -> bool:
    """True if ``text`` contains a calendar date of day or month precision.

    A bare weekday, time of day, year or a relative expression ("this morning", "several
    years", "Friday", "at 3pm", "2019") identifies nobody and carries meaning the synthetic
    text needs, so DATE_TIME spans without an explicit date are not redacted.
    """
    return _EXPLICIT_DATE.search(text) is not None


_CAP_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_TEXT_DATE = re.compile(
    rf"""(?x)
    \b{_CAP_MONTH}\s+{_DAY}\b(?:,?\s+(?:19|20)\d{{2}}\b)?          # Nov 5th, 1991 / March 3
    | \b{_DAY}\s+(?:of\s+)?{_CAP_MONTH}(?![a-z])(?:,?\s+(?:19|20)\d{{2}}\b)?  # 3 March 2021
    | \b{_CAP_MONTH},?\s+(?:19|20)\d{{2}}\b                      # March 2021
    """
)


# A timestamp around a date: "Wed,  6 Sep 2006 20:14:08 +0200", "2018-05-31 09:41:46.717241",
# "2002-10-02T03:56:58+01:00". The weekday before and the time and zone after belong to the
# date: a changelog's or a mail's timestamp removed only in part still dates the person.
_WEEKDAY_BEFORE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6}\.?,?\s{1,3}$")
_TIME_AFTER = re.compile(
    r"(?:,?\s{1,3}|T)(?:at\s+)?(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
    r"(?:\s?[ap]\.?m\.?)?(?:\s?(?:Z|[+-]\d\d:?\d\d|UTC|GMT|[A-Z]{3,4}))?(?:\s?\([A-Z]{2,5}\))?"
)
_ISO_DATE = re.compile(r"(?<![\d.-])(?:19|20)\d\d-[01]\d-[0-3]\d(?![\d-])")
# "At 20:18 03/08/02 +0100, you wrote:" (Eudora's attribution line): a numeric date with a
# time before or a zone after it is one timestamp; alone, Presidio's date patterns take it.
_NUMERIC_DATE = re.compile(r"(?<![\d/.-])\d{1,2}/\d{1,2}/\d{2,4}(?![\d/])")
_TIME_BEFORE = re.compile(r"(?<![\d:])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?\s{1,3}$")
_ZONE_AFTER = re.compile(r"\s?(?:[+-](?:0\d|1[0-4]):?[0-5]\d|UTC|GMT)\b")


class TextDateRecognizer(LocalRecognizer):
    """Dates written with a month name ("Nov 5th, 1991", "3 March 2021", "March 2021").

    Presidio's date patterns are numeric only and the small spaCy model misses many written
    dates, especially with ordinals. The month must be capitalised: "may 5" in lower case is
    more often the verb. A weekday before and a time and zone after are part of the span
    ("Wed,  6 Sep 2006 20:14:08 +0200"), and ISO dates take their time with them.
    """

    SCORE = 0.6

    def __init__(self) -> None:
        super().__init__(supported_entities=["DATE_TIME"], supported_language="en")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Find written dates and ISO dates, with the weekday and time around them."""
        out = []
        for m in [*_TEXT_DATE.finditer(text), *_ISO_DATE.finditer(text)]:
            start, end = m.start(), m.end()
            before = _WEEKDAY_BEFORE.search(text, max(0, start - 14), start)
            if before is not None:
                start = before.start()
            after = _TIME_AFTER.match(text, end)
            if after is not None:
                end = after.end()
            out.append(_result(self, "DATE_TIME", start, end, self.SCORE))
        for m in _NUMERIC_DATE.finditer(text):
            before = _TIME_BEFORE.search(text, max(0, m.start() - 12), m.start())
            after = _TIME_AFTER.match(text, m.end()) or _ZONE_AFTER.match(text, m.end())
            if before is not None or after is not None:
                start = before.start() if before is not None else m.start()
                end = after.end() if after is not None else m.end()
                out.append(_result(self, "DATE_TIME", start, end, self.SCORE))
        return out


# ----------------------------------------------------------------------------------------------
# Street addresses
# ----------------------------------------------------------------------------------------------

_STOP = (
    r"(?:the|a|an|on|in|at|to|of|my|your|our|for|and|or|by|with|from|this|that|per|every|each"
    r"|about|into|after|before|more|than|is|was|are|be|it|its|we|i|you|he|she|they|me|us|am"
    r"|pm|days?|hours?|minutes?|weeks?|months?|years?|times?|items?|units?|people|tablets?"
    r"|mg|kg|cm|mm|km|miles?|x)"
)
_WORD = rf"(?!{_STOP}\b)[^\W_][\w'’-]*"
_SUFFIX = (
    r"(?:street|st|avenue|ave|av|boulevard|blvd|road|rd|lane|ln|drive|dr|court|ct|way|place|pl"
    r"|terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|crescent|cres"
    r"|close|grove|gardens|gdns|row|mews|alley|plaza|loop|pike)"
)
_DIR = r"(?:n|s|e|w|ne|nw|se|sw|north|south|east|west)\.?"
_UNIT_WORD = r"(?:apt|apartment|suite|ste|unit|flat|fl|floor|rm|room|bldg|building)"
_UNIT = rf"(?:,?\s*(?:{_UNIT_WORD}\.?\s*\#?\s*|\#\s*)[\w-]{{1,6}}\b)"
_US_STATES = (
    r"(?:alabama|alaska|arizona|arkansas|california|colorado|connecticut|delaware|florida"
    r"|georgia|hawaii|idaho|illinois|indiana|iowa|kansas|kentucky|louisiana|maine|maryland"
    r"|massachusetts|michigan|minnesota|mississippi|missouri|montana|nebraska|nevada"
    r"|new\s+hampshire|new\s+jersey|new\s+mexico|new\s+york|north\s+carolina|north\s+dakota"
    r"|ohio|oklahoma|oregon|pennsylvania|rhode\s+island|south\s+carolina|south\s+dakota"
    r"|tennessee|texas|utah|vermont|virginia|washington|west\s+virginia|wisconsin|wyoming)"
)
_TOWN_WORD = r"[^\W\d_][\w'’.-]*"
_TOWN = rf"{_TOWN_WORD}(?:\s+{_TOWN_WORD}){{0,2}}?"
_CAP_TOWN = r"(?-i:[A-ZÀ-Ý])[\w'’.-]*(?:\s+(?-i:[A-ZÀ-Ý])[\w'’.-]*){0,2}?"
_ZIP = r"(?:\d{5}(?:-\d{4})?|\d{4}|[a-z]\d[a-z]\s?\d[a-z]\d)"  # US, AU, CA
_UK_POSTCODE = r"(?:[a-z]{1,2}\d[a-z\d]?\s*\d[a-z]{2})"
# City, region and postcode after a street line: "Springfield, IL 62704", "Fitzroy VIC 3065",
# "Toronto, ON M5V 2T6" (a region and code make a lower-case town safe to take); a capitalised
# town with a UK postcode ("Leeds LS6 2AB") or an upper-case region alone ("Dayton, OH").
_TAIL = (
    r"(?:(?:\s*[,\n]\s*|\s+)"
    rf"(?:{_TOWN},?\s+(?:{_US_STATES}|[a-z]{{2,3}})\.?\s+{_ZIP}\b"
    rf"|{_CAP_TOWN}\s+{_UK_POSTCODE}\b"
    rf"|{_CAP_TOWN},\s*(?-i:[A-Z]{{2}})\b(?!\s*\d))"
    r")"
)
_US_STYLE = re.compile(
    rf"""(?ix)
    (?:\b{_UNIT_WORD}\.?\s*\w{{1,5}},?\s+)?          # Flat 3, / Unit 4,
    \b\d{{1,6}}[a-z]?(?:-\d{{1,4}})?\s+               # house number
    (?:{_DIR}\s+)?
    (?:{_WORD}\s+){{1,4}}?{_SUFFIX}\b\.?             # street name and suffix
    (?:\s+{_DIR}(?![\w'’]))?
    {_UNIT}?
    {_TAIL}?
    """
)
_EU_SUFFIX = (
    r"(?:straße|strasse|str\.|weg|allee|platz|gasse|ufer|chaussee|straat|laan|plein|gracht"
    r"|kade|gatan|vägen|gade|vej)"
)
# The suffixes that are also words of their own ("Berliner Allee"), without the capital.
_EU_WORD = r"(?:traße|trasse|llee|latz|asse|fer|haussee|aan|lein|racht|ade)"
# "Hauptstraße 12, 10115 Berlin", "Berliner Allee 5a", "Keizersgracht 123, 1015 CJ Amsterdam".
# A word is at most 80 characters (Germany's longest street name, "Bischöflich-Geistlicher-
# Rat-Josef-Zinnbauer-Straße", is 49): unbounded, a run of "Ab-Ab-Ab-" was backed through from
# each of its capitals, the square of its length (2.7 s per 8 KB window).
_EU_STYLE = re.compile(
    rf"""(?x)
    (?:\b(?-i:[A-ZÄÖÜ])[\w'’-]{{0,80}}\s+)?              # "Berliner", "Am"
    \b(?-i:[A-ZÄÖÜ])(?:[\w'’-]{{0,80}}(?i:{_EU_SUFFIX})|(?i:{_EU_WORD}))
    \s+\d{{1,4}}\s?[a-z]?\b
    (?:,?\s+\d{{4,5}}(?:\s?[A-Z]{{2}})?\s+(?-i:[A-ZÄÖÜ])[\w'’-]*(?:\s+[a-z]{{2,3}}\s+[A-Z][\w'’-]*)?)?
    """
)
# "12 rue des Lilas, 75011 Paris", "110 bis avenue Victor Hugo", "26 boulevard Mokhtari -
# Tizi Ouzou". The street's name is capitalised words and French particles ("de la Paix"),
# perhaps after one lower-case word ("rue des lieutenants Thomazo"); a name in lower case
# counts only with the postcode and town after it ("12 rue de la paix, 75011 paris"), so "3
# route options and 12 place settings" is no address.
_FR_PARTICLES = r"(?:(?:de|du|des|la|le|les|et|sur|aux|au|en)\s+|[dl]['’])"
_FR_NAME = rf"{_FR_PARTICLES}*(?-i:[A-ZÀ-Þ])[\w'’-]*"
_FR_LOWER = rf"(?:{_FR_PARTICLES}*(?-i:[a-zà-ÿ])[\w'’-]*\s+)?"
_FR_STYLE = re.compile(
    rf"""(?ix)
    \b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+
    (?:rue|avenue|av\.|boulevard|bd|place|allée|allee|impasse|chemin|quai|cours|route)\s+
    (?:
      {_FR_LOWER}{_FR_NAME}(?:\s+{_FR_NAME}){{0,4}}(?![\w'’-])
      (?:,?\s+\d{{5}}\s+[^\W\d_][\w'’-]*(?:[ -][^\W\d_][\w'’-]*)?)?
    | (?:[\w'’-]+\s+){{0,5}}?[\w'’-]+,?\s+\d{{5}}\s+[^\W\d_][\w'’-]*(?:[ -][^\W\d_][\w'’-]*)?
    )
    """
)


class StreetAddressRecognizer(LocalRecognizer):
    """Postal addresses: street line with number and suffix, unit, and city/region/postcode.

    One span covers the whole address, because a partly redacted address still locates a
    person. The street line needs a house number and a street suffix (or a German/Dutch/French
    street word), which keeps quantities ("3 items"), times and room numbers out.
    """

    SCORE = 0.6
    PATTERNS = (_US_STYLE, _EU_STYLE, _FR_STYLE)

    def __init__(self) -> None:
        super().__init__(supported_entities=["STREET_ADDRESS"], supported_language="en")

    def load(self) -> None:
        """Nothing to load: compiled patterns."""

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Find addresses; contained matches are dropped by the analyzer's de-duplication."""
        out = []
        for pattern in self.PATTERNS:
            for m in pattern.finditer(text):
                start, end = m.start(), m.end()
                while end > start and text[end - 1] in " ,.\n":
                    end -= 1
                out.append(_result(self, "STREET_ADDRESS", start, end, self.SCORE))
        return out


# ----------------------------------------------------------------------------------------------
# Credit cards
# ----------------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# (first digits, lowest, highest, allowed lengths): issuer ranges that matter in practice.
_IIN_RANGES: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (1, 4, 4, frozenset({13, 16, 19})),  # Visa
    (2, 51, 55, frozenset({16})),  # Mastercard
    (4, 2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2, 34, 34, frozenset({15})),  # Amex
    (2, 37, 37, frozenset({15})),
    (4, 6011, 6011, frozenset(range(16, 20))),  # Discover
    (3, 644, 649, frozenset(range(16, 20))),
    (2, 65, 65, frozenset(range(16, 20))),
    (4, 3528, 3589, frozenset(range(16, 20))),  # JCB
    (2, 35, 35, frozenset({16})),  # JCB numbers as test generators and some issuers write them
    (4, 1800, 1800, frozenset({15})),  # JCB, legacy 15-digit ranges
    (4, 2131, 2131, frozenset({15})),
    (3, 300, 305, frozenset(range(14, 20))),  # Diners
    (2, 36, 36, frozenset(range(14, 20))),
    (2, 38, 39, frozenset(range(14, 20))),
    (2, 62, 62, frozenset(range(16, 20))),  # UnionPay
    (4, 2200, 2204, frozenset(range(16, 20))),  # Mir
    (2, 50, 50, frozenset(range(12, 20))),  # Maestro: 50 and 56-69, 12 to 19 digits
    (2, 56, 69, frozenset(range(12, 20))),
    (4, 5018, 5018, frozenset(range(12, 20))),
    (4, 5020, 5020, frozenset(range(12, 20))),
    (4, 5038, 5038, frozenset(range(12, 20))),
    (4, 5893, 5893, frozenset(range(12, 20))),
    (4, 6304, 6304, frozenset(range(12, 20))),
    (4, 6759, 6759, frozenset(range(12, 20))),
    (4, 6761, 6763, frozenset(range(12, 20))),
)


def _card_number_ok(digits: str) -> bool:
    if not 12 <= len(digits) <= 19 or not luhn_valid(digits):
        return False
    for width, low, high, lengths in _IIN_RANGES:
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


_CARD_CANDIDATE = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){11,22}(?![\w]|[.-]\d)")


class LuhnCardRecognizer(LocalRecognizer):
    """Card numbers: 12-19 digits, one separator style, issuer prefix and length, Luhn.

    Candidates are digit runs with optional single spaces or hyphens; each window of whole
    digit groups is tried, longest first, so "card 4111 1111 1111 1111 12 items" still finds
    the card. The issuer table ties each prefix to its lengths, which with Luhn leaves about
    one random digit string in a few hundred; hence a score above the threshold without cues.
    """

    SCORE = 0.6
    CONTEXT = ("credit", "card", "visa", "mastercard", "amex", "maestro", "debit", "cc")

    def __init__(self) -> None:
        super().__init__(
            supported_entities=["CREDIT_CARD"], supported_language="en", context=list(self.CONTEXT)
        )

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Find valid card numbers."""
        out = []
        for m in _CARD_CANDIDATE.finditer(text):
            raw = m.group(0)
            seps = set(re.findall(r"[ -]", raw))
            if len(seps) > 1:
                continue
            groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", raw)]
            found = self._best_window(raw, groups)
            if found is not None:
                s, e = found
                out.append(_result(self, "CREDIT_CARD", m.start() + s, m.start() + e, self.SCORE))
        return out

    @staticmethod
    def _best_window(raw: str, groups: list[tuple[int, int]]) -> tuple[int, int] | None:
        n = len(groups)
        windows = sorted(
            ((i, j) for i in range(n) for j in range(i, n)),
            key=lambda ij: groups[ij[0]][0] - groups[ij[1]][1],
        )
        for i, j in windows:
            s, e = groups[i][0], groups[j][1]
            if _card_number_ok(re.sub(r"\D", "", raw[s:e])):
                return s, e
        return None


# ----------------------------------------------------------------------------------------------
# Account numbers
# ----------------------------------------------------------------------------------------------

_ACCOUNT = re.compile(
    r"""(?ix)
    \b(?:(?:bank|checking|savings|insurance|loan)\s+)?
    (?:account|acct|a/c|member(?:ship)?|policy|mrn|medical\s+record|record|customer|client
       |subscriber|contract|patient)
    (?:\s+(?:number|no\.?|num|nr|id|\#))?
    \s*(?:is|:|\#|=)?\s*
    (?P<value>(?:[a-z]{1,4}-?)?\d(?:[ -]?\d){3,19})
    (?![\w-])
    """
)


class AccountNumberRecognizer(LocalRecognizer):
    """Account, member, policy and record numbers introduced by a cue word.

    Without a cue a run of digits is just as likely an order, quantity or version, so the cue
    is required; the span is the number only, the cue stays as useful text.
    """

    # Above a phone number boosted by the cue "number" (0.4 + 0.35), which would otherwise
    # win the same span as a PHONE_NUMBER.
    SCORE = 0.8

    def __init__(self) -> None:
        super().__init__(supported_entities=["ACCOUNT_NUMBER"], supported_language="en")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Find cue-led numbers."""
        return [
            _result(self, "ACCOUNT_NUMBER", m.start("value"), m.end("value"), self.SCORE)
            for m in _ACCOUNT.finditer(text)
            if sum(ch.isdigit() for ch in m.group("value")) >= 5
        ]


# ----------------------------------------------------------------------------------------------
# Phone numbers
# ----------------------------------------------------------------------------------------------


#: ``phonenumbers``' candidate pattern: every match in every region starts from one of these.
_PHONE_CANDIDATE: re.Pattern[str] = _phonenumbermatcher._PATTERN


class InternationalPhoneRecognizer(PhoneRecognizer):
    """Valid US numbers and numbers in international form ("+CC ..."), in one matcher pass.

    Presidio's recognizer scans the text once per region (eight) and keeps numbers *valid* in
    that region; that was the costliest step of scrubbing (a third of its CPU, all in
    ``phonenumbers``' parser). Here one US pass at the *possible* leniency keeps what is valid
    in the US or written with a country code (whose range need not be in the metadata to be
    a phone number to any reader), and the other regions' national formats are left to
    :class:`~.phones.NationalPhoneRecognizer`, whose cheap candidate pattern parses only
    phone-shaped digit groups (and bare runs of digits with the matcher's own VALID checks).
    Recall on the evaluation corpora was unchanged by the move (benchmarks/README.md).
    Extensions ("ext. 123", "x4456") and "001-" prefixes are handled by ``phonenumbers``.
    A text in which ``phonenumbers``' candidate pattern finds nothing holds no phone number.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("supported_regions", ("US",))  # the one pass; see the class doc
        super().__init__(**kwargs)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        """Valid US numbers and possible-length international numbers, in one pass."""
        import phonenumbers

        if _PHONE_CANDIDATE.search(text) is None:
            return []
        results: list[RecognizerResult] = []
        for match in phonenumbers.PhoneNumberMatcher(
            text, "US", leniency=phonenumbers.Leniency.POSSIBLE
        ):
            if not (
                match.raw_string.startswith(("+", "00"))
                or phonenumbers.is_valid_number(match.number)
            ):
                continue
            if any(r.start < match.end and match.start < r.end for r in results):
                continue
            results.append(_result(self, "PHONE_NUMBER", match.start, match.end, self.SCORE))
        return results


# ----------------------------------------------------------------------------------------------
# UK NHS numbers
# ----------------------------------------------------------------------------------------------


class ContextNhsRecognizer(NhsRecognizer):
    """Presidio's NHS recognizer, kept only when an NHS cue is within 60 characters before.

    Any 10-digit string passes the NHS mod-11 check with probability about 1/11, so US phone
    numbers such as 212-555-0199 were tagged UK_NHS. Real NHS numbers in text come with their
    name ("NHS number", "NHS no.").
    """

    WINDOW = 60
    _CUE = re.compile(r"(?i)\bnhs\b|national health")

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """Presidio's matches, filtered by the cue."""
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [
            r
            for r in results or []
            if self._CUE.search(text[max(0, r.start - self.WINDOW) : r.start])
        ]


# ----------------------------------------------------------------------------------------------
# Person names
# ----------------------------------------------------------------------------------------------


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


# Common English words that are also first names or surnames in Faker's lists; a lexicon hit
# on one of these alone is not evidence of a name. Written from the collisions seen on the
# development split and in everyday support text.
_COMMON_WORDS = _words(
    """
    will mark bill may june hope grant rose summer page long young white black brown green king
    price rich field house ford lane street art joy april august guy pat sun can van park hill
    oak case love faith grace rich gay sky ray dean major rock wood stone storm dawn eve holly
    ivy lily iris jade amber ruby pearl crystal honey candy cash chase drew frank earl duke
    baron prince royal chance lucky sunny may will best kind dear thanks please hello hi hey
    customer patient user caller support team service help admin order card account number
    phone email message note record visit today tomorrow yesterday morning evening night week
    month year new old good great little big north south east west central main city town home
    office billing refund invoice premium priority monday tuesday wednesday thursday friday
    saturday sunday january february march said says asked called reports reported states
    stated mr mrs ms miss mx dr prof sir madam april june july august september october
    november december the and for with from
    """
)
_PARTICLES = _words(
    """
    van von der den de la le del della di da dos das du mac mc ó o' bin al el ter ten st
    """
)
_TOKEN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*\.?")


@lru_cache(maxsize=1)
def name_lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """Case-folded first names and surnames from Faker's Latin-script locale lists.

    Faker (pure Python, installed with the server) ships name lists for ~90 locales, about
    21,000 first names and 21,000 surnames in Latin script; they are read from disk once.
    Without Faker the lexicon is empty and only cue words and spaCy find names (logged).
    """
    try:
        import importlib
        import pkgutil

        import faker.providers.person as person_providers
    except ImportError:
        logger.warning("faker is not installed: the name lexicon is disabled")
        return frozenset(), frozenset()

    def latin(name: str) -> bool:
        return all(ord(c) < 0x250 or c in " -'’" for c in name)

    def values(provider: Any, attr: str) -> list[str]:
        v = getattr(provider, attr, ())
        if isinstance(v, dict):
            v = list(v)
        if not isinstance(v, list | tuple):
            return []
        return [x for x in v if isinstance(x, str) and latin(x)]

    firsts: set[str] = set()
    lasts: set[str] = set()
    for mod in pkgutil.iter_modules(person_providers.__path__):
        try:
            provider = importlib.import_module(f"{person_providers.__name__}.{mod.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr in ("first_names", "first_names_male", "first_names_female"):
            firsts.update(values(provider, attr))
        firsts.update(values(provider, "first_romanized_names"))
        lasts.update(values(provider, "last_names"))
        lasts.update(values(provider, "last_romanized_names"))
    # Multi-word entries ("Ana Júlia") are matched word by word.
    first = {w.casefold() for n in firsts for w in re.split(r"[ -]", n) if len(w) > 1}
    last = {w.casefold() for n in lasts for w in re.split(r"[ -]", n) if len(w) > 1}
    # names-dataset's 105 countries (the committed asset, see name_lexicon.py).
    asset = load_name_asset()
    first |= asset.first
    last |= asset.last
    return frozenset(first) - _COMMON_WORDS, frozenset(last) - _COMMON_WORDS


def single_names() -> frozenset[str]:
    """First names that may stand alone as a PERSON (see :mod:`.name_lexicon`)."""
    return load_name_asset().single - _COMMON_WORDS


def _en_stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


_EN_STOP = _en_stop_words()
# Parts of speech that a lower-case name word is not, by spaCy's tagger ("lot more", "add an").
_NOT_NAME_POS = frozenset({"AUX", "ADP", "DET", "PRON", "CCONJ", "SCONJ", "PART", "NUM", "ADV"})


def _pos_at(nlp_artifacts: Any, char: int) -> str:
    """Part of speech (spaCy's tagger) of the token starting at ``char``; "" if unknown.

    The offset -> tag index is built once per document and kept on the artifacts object:
    scanning the tokens for every candidate word was ~6 % of the scrubber's time.
    """
    doc = getattr(nlp_artifacts, "tokens", None)
    if doc is None:
        return ""
    index: dict[int, str] | None = getattr(nlp_artifacts, "_privsynth_pos", None)
    if index is None:
        index = {tok.idx: str(tok.pos_) for tok in doc}
        # An artifacts type with __slots__ just goes uncached.
        with contextlib.suppress(AttributeError):
            nlp_artifacts._privsynth_pos = index
    return index.get(char, "")


def _tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(text)]


def _is_initial(tok: str) -> bool:
    return len(tok) == 2 and tok[0].isalpha() and tok[1] == "."


def _bare_initial(tok: str) -> bool:
    """A middle initial written without its dot ("Anes T Ivarsson")."""
    return len(tok) == 1 and tok.isupper()


def _capitalised(tok: str) -> bool:
    return (tok[:1].isupper() and not tok.isupper()) or (len(tok) > 1 and tok.istitle())


class NameLexiconRecognizer(LocalRecognizer):
    """Names made of a known first name and a surname, in title case or lower case.

    spaCy's small model misses many non-English names ("Ruhide Aksu") and nearly all
    lower-cased ones ("gábor szekeres"). A known first name (Faker's lists, minus common
    English words) followed, after an optional initial or particle, by a surname:

    * title case: the surname is any capitalised word that is not a common word;
    * lower case: the surname must be in the surname list too (both words are evidence).

    Single words are left to cue words (:class:`PersonCueRecognizer`) and spaCy.
    """

    SCORE = 0.5
    #: A lone first name is weaker evidence than first name + surname.
    SINGLE_SCORE = 0.4

    def __init__(
        self,
        first_names: frozenset[str] | None = None,
        last_names: frozenset[str] | None = None,
        single_names: frozenset[str] | None = None,
    ) -> None:
        self._first = first_names
        self._last = last_names
        self._single: frozenset[str] = single_names or frozenset()
        self._single_given = single_names is not None
        # Presidio's constructor calls load().
        super().__init__(supported_entities=["PERSON"], supported_language="en")

    def load(self) -> None:
        """Read the lexicon (cached per process)."""
        if self._first is None or self._last is None:
            self._first, self._last = name_lexicon()
        if not self._single_given:
            self._single = single_names()

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Find first-name + surname sequences."""
        if self._first is None or self._last is None:
            self.load()
        first, last = self._first or frozenset(), self._last or frozenset()
        toks = _tokens(text)
        out = []
        i = 0
        while i < len(toks):
            end = self._match_at(
                text,
                toks,
                i,
                first,
                last,
                nlp_artifacts=nlp_artifacts,
                lower_first=self._single or None,
            )
            if end is None:
                if self._single_at(text, toks, i, nlp_artifacts):
                    out.append(_result(self, "PERSON", toks[i][0], toks[i][1], self.SINGLE_SCORE))
                i += 1
                continue
            stop = toks[end][1] - toks[end][2].endswith(".")
            if text[toks[i][0] : stop].casefold() not in countries():  # "Czech Republic"
                out.append(_result(self, "PERSON", toks[i][0], stop, self.SCORE))
            i = end + 1
        return out

    def _single_at(
        self, text: str, toks: list[tuple[int, int, str]], i: int, nlp_artifacts: Any
    ) -> bool:
        """A stand-alone first name: in the single-name list, capitalised, a proper noun.

        spaCy's tag, when the pipeline has a tagger, must say proper noun (a name list alone
        would take "Ruby" in "Ruby on Rails" as readily as in "Ruby called"); before a colon
        or a possessive the word names a speaker or an owner ("Calvin: ...", "Petra's kid").
        The default pipeline runs without a tagger (for speed), so the list itself is the
        gate there: only first names ranked high in some country and rare as English words.
        """
        start, end, word = toks[i]
        if word.endswith(".") or not _capitalised(word) or word.isupper():
            return False
        if word.casefold() not in self._single or word.casefold() in countries():
            return False
        nxt = text[end : end + 2]
        if nxt[:1] == ":" or nxt in ("'s", "’s"):
            return True
        pos = _pos_at(nlp_artifacts, start)
        return pos in ("PROPN", "")  # "": the pipeline runs without a tagger

    @staticmethod
    def _match_at(
        text: str,
        toks: list[tuple[int, int, str]],
        i: int,
        first: frozenset[str],
        last: frozenset[str],
        *,
        nlp_artifacts: Any = None,
        lower_first: frozenset[str] | None = None,
    ) -> int | None:
        word = toks[i][2]
        if word.endswith("."):
            return None  # sentence end or abbreviation, not a first name
        parts = word.casefold().replace("’", "'").split("-")
        if not all(p in first for p in parts):
            return None
        lower = word.islower()
        if lower and (
            word in _EN_STOP or len(word) < 3 or _pos_at(nlp_artifacts, toks[i][0]) in _NOT_NAME_POS
        ):
            return None
        if lower and lower_first is not None and word.casefold() not in lower_first:
            # Without capitals only a first name that is rare as an English word opens a
            # name: the 105-country list holds "punk" and "sane" too ("punk music").
            return None
        if not lower and not _capitalised(word):
            return None
        j = i + 1
        end = None
        while j < len(toks) and j <= i + 3:
            prev_end, (s, _e, tok) = toks[j - 1][1], toks[j]
            if text[prev_end:s] != " ":
                break
            folded = tok.rstrip(".").casefold()
            if _is_initial(tok) or folded in _PARTICLES or (not lower and _bare_initial(tok)):
                j += 1
                continue
            if tok.endswith("."):
                tok = tok[:-1]
            if lower:
                ok = (
                    tok.islower()
                    and all(p in last for p in folded.split("-"))
                    and folded not in _EN_STOP
                    and len(folded) > 2
                    and _pos_at(nlp_artifacts, s) not in _NOT_NAME_POS
                )
            else:
                ok = _capitalised(tok) and folded not in _COMMON_WORDS
            if ok:
                end = j
            break
        return end


# Cue words after which a name follows. Group "cue" is matched case-insensitively.
_CUE = re.compile(
    r"""(?imx)
    (?:
      \b(?:mr|mrs|ms|miss|mx|dr|prof|sir|madam)\.?[ \t]+                        # titles
    | \bmy\s+name\s+is\s+ | \bname\s*:\s* | \bthis\s+is\s+ | \bit'?s\s+ | \bi'?m\s+
    | ^[ \t]*(?:dear|hi|hello|hey|good\s+(?:morning|afternoon|evening)|thanks|thank\s+you)[ \t]+
    | (?:\.|!|\?)\s+(?:hi|hello|hey|thanks|thank\s+you)[ \t]+
    | (?:regards|best|cheers|thanks|sincerely|yours|wishes)[ \t]*,?[ \t]*\n[ \t]*
    | \b(?:wife|husband|spouse|partner|daughter|son|mother|father|brother|sister|contact
         |customer|caller|patient|pt|user|holder(?:\s+is)?|client|colleague|manager)[ \t]*:?[ \t]+
    | \b(?:spoke|talked|speaking)\s+(?:with|to)\s+ | \bforwarded\s+(?:[\w']+\s+){0,3}?to\s+
    | \bcc'?d\s+ | \bmessage\s+for\s+ | \breferred\s+by\s+ | \bseen\s+by\s+ | \bsigned\s+by\s+
    | \bplaced\s+by\s+ | \bbelongs\s+to\s+ | \bassigned\s+to\s+ | \bescalated\s+to\s+
    | ^
    )
    """
)
_STOP_AFTER_CUE = _COMMON_WORDS | _words(
    """
    a an all am are as at be been being by can could did do does everyone folks guys i if in is
    it its me my no not of on or our please so team that there this to too urgent us was we
    were what when where which who why you your yes ok okay sorry just also however here
    """
)


class PersonCueRecognizer(LocalRecognizer):
    """Names right after cue words: titles, "my name is", greetings, sign-offs, relations.

    Up to three name words follow the cue (initials and particles such as "van", "de" may sit
    between them). A capitalised word is taken unless it is a common word; a lower-case word
    only if it is in the name lexicon, so "this is urgent" stays. A line that starts with a
    single known first name and a comma ("Carly, are you free") also counts.
    """

    SCORE = 0.55

    def __init__(
        self, first_names: frozenset[str] | None = None, last_names: frozenset[str] | None = None
    ) -> None:
        self._first = first_names
        self._last = last_names
        self._names: frozenset[str] = frozenset()
        # Presidio's constructor calls load().
        super().__init__(supported_entities=["PERSON"], supported_language="en")

    def load(self) -> None:
        """Read the lexicon (cached per process)."""
        if self._first is None or self._last is None:
            self._first, self._last = name_lexicon()
        # Built once: the union of two ~20k-word sets per call was ~12 % of scrubbing time.
        self._names = self._first | self._last

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Find names after cues."""
        if self._first is None or self._last is None:
            self.load()
        names = self._names
        first = self._first or frozenset()
        out = []
        for m in _CUE.finditer(text):
            line_start = m.group(0) == ""
            pos = m.end()
            words: list[tuple[int, int]] = []
            for t in _TOKEN.finditer(text, pos):
                gap = text[pos : t.start()]
                if gap.strip() or (words and gap not in (" ",)) or (not words and gap):
                    break
                tok = t.group(0)
                bare = tok.rstrip(".")
                folded = bare.casefold()
                if _is_initial(tok) or (words and folded in _PARTICLES):
                    pos = t.end()
                    continue
                parts = folded.replace("’", "'").split("-")
                if folded in _STOP_AFTER_CUE:
                    break
                if _capitalised(bare) and not bare.isupper():
                    ok = True
                elif bare.islower():
                    ok = (
                        all(p in names for p in parts)
                        and folded not in _EN_STOP
                        and _pos_at(nlp_artifacts, t.start()) not in _NOT_NAME_POS | {"VERB", "ADJ"}
                    )
                else:
                    ok = False
                if not ok:
                    break
                words.append((t.start(), t.start() + len(bare)))
                pos = t.end()
                if len(words) == 3 or tok.endswith("."):
                    break
            if not words:
                continue
            if line_start:
                # A bare line start is a cue only for "Firstname," opening a line.
                s, e = words[0]
                if len(words) != 1 or text[e : e + 1] != ",":
                    continue
                if text[s:e].casefold() not in first:
                    continue
            out.append(_result(self, "PERSON", words[0][0], words[-1][1], self.SCORE))
        return out


# ----------------------------------------------------------------------------------------------
# Refinement after all recognizers
# ----------------------------------------------------------------------------------------------

_PLACE_CUE = re.compile(
    r"(?i)(?:\b(?:in|near|at)|\b(?:home|moved|relocated|travel(?:l)?ing|flew|fly|flying|trip)"
    r"\s+to)\s+$"
)
_NUMERIC_DATE = re.compile(r"\d{1,4}([/.-])\d{1,2}\1\d{2,4}")
_NOT_A_NAME = re.compile(r"[\d@/:\\#=]")


def _is_ner(result: Any) -> bool:
    meta = result.recognition_metadata or {}
    return bool(meta.get(RecognizerResult.RECOGNIZER_NAME_KEY) == NER_RECOGNIZER)


def _split_ner_at_newlines(text: str, results: Iterable[Any]) -> list[Any]:
    """NER spans that cross a line break ("Boston", blank line, "Anna") split per line."""
    out = []
    for r in results:
        if not _is_ner(r) or "\n" not in text[r.start : r.end]:
            out.append(r)
            continue
        pos = r.start
        for piece in text[r.start : r.end].split("\n"):
            start = pos + len(piece) - len(piece.lstrip())
            end = pos + len(piece.rstrip())
            if end > start:
                out.append(
                    RecognizerResult(
                        entity_type=r.entity_type,
                        start=start,
                        end=end,
                        score=r.score,
                        analysis_explanation=r.analysis_explanation,
                        recognition_metadata=dict(r.recognition_metadata or {}),
                    )
                )
            pos += len(piece) + 1
    return out


def refine_results(
    text: str, results: Iterable[Any], *, date_profile: str = "default"
) -> list[Any]:
    """Drop detections that are noise, keeping every validated pattern match.

    * A one-word NER PERSON right after "in", "at", "near", "moved to", "home to" ... is
      relabelled LOCATION: the small model calls many cities people ("meet in Valencia").
    * NER spans crossing a line break are split per line (a header line and a greeting are
      two things).
    * DATE_TIME without an explicit calendar date (:func:`is_explicit_date`) is dropped.
    * An NER PERSON, LOCATION or NRP span containing digits or URL/e-mail characters is
      dropped: spaCy's small model labels URLs, dates and IDs as names and places.
    * A PHONE_NUMBER that is an explicit numeric date ("08.09.1947") is dropped: the phone
      cue "number" nearby can lift it above the date.
    * An NER span overlapping a non-NER result of another entity type is dropped: spaCy tags
      phone numbers, IPs and card numbers as DATE_TIME at 0.85, which would otherwise outrank
      the validated pattern result and give the wrong placeholder; likewise a city or a
      "street named after a person" inside an address.
    """
    kept = []
    for r in _split_ner_at_newlines(text, results):
        span = text[r.start : r.end]
        if (
            _is_ner(r)
            and r.entity_type == "PERSON"
            and " " not in span
            and _PLACE_CUE.search(text[max(0, r.start - 30) : r.start])
        ):
            r.entity_type = "LOCATION"
        if r.entity_type == "DATE_TIME" and not _date_kept(span, date_profile):
            continue
        if r.entity_type == "PHONE_NUMBER" and _NUMERIC_DATE.fullmatch(span.strip()):
            continue
        if (
            _is_ner(r)
            and r.entity_type in ("PERSON", "LOCATION", "NRP")
            and _NOT_A_NAME.search(span)
        ):
            # "Andreas Metzler <ametzler@...>" as one PERSON: keep the name before the address
            # (Presidio has already dropped the contained, narrower name result).
            head = re.match(r"[^\W\d_][^<@(\[\d:/\\#=]*", span)
            name = head.group(0).rstrip(" \t,-\"'") if head else ""
            if r.entity_type != "PERSON" or not name or _NOT_A_NAME.search(name):
                continue
            r.end = r.start + len(name)
        kept.append(r)
    if date_profile == "hipaa":
        kept.extend(_date_elements(text, kept))
    kept = apply_policy(text, kept)
    patterns = [r for r in kept if not _is_ner(r)]
    refined = [
        r
        for r in kept
        if not _is_ner(r)
        or not any(
            p.entity_type != r.entity_type and p.start < r.end and r.start < p.end for p in patterns
        )
    ]
    refined = _join_street_parts(text, refined)
    return refined + propagate_names(text, refined)


# What may stand between two parts of one street address on a line: "Avenida Vítor Gonçalves,
# 25", "площа Гобеленова, буд. 452 кв. 93".
_STREET_JOINT = re.compile(r"[ \t]*,?[ \t]*")


def _join_street_parts(text: str, results: list[Any]) -> list[Any]:
    """Join street-address results that only a comma or blanks separate on one line.

    The layouts find a street's name and its house number (or building and flat) as two
    parts; replaced one by one they leave "<STREET>, <STREET>" and the separator standing
    between them. One span gives one placeholder, and the joint is part of the address.
    """
    streets = sorted((r for r in results if r.entity_type == "STREET_ADDRESS"), key=_by_start)
    dropped: set[int] = set()
    head = None
    for r in streets:
        if head is not None and r.end <= head.end:
            continue  # inside the span being built: it stays the head
        if (
            head is not None
            and head.start < r.start
            and _STREET_JOINT.fullmatch(text, min(head.end, r.start), r.start)
        ):
            head.end = r.end
            head.score = max(head.score, r.score)
            dropped.add(id(r))
            continue
        head = r
    return [r for r in results if id(r) not in dropped]


def _by_start(result: Any) -> tuple[int, int]:
    return result.start, -result.end


#: Entity types the over-scrubbing policy (:mod:`.not_personal`) may exempt.
_POLICY_TYPES = frozenset({"PERSON", "LOCATION", "ORGANIZATION"})
_PERSONAL_PATH = re.compile(
    r"(?i)~|/(?:people|users?|u|home|staff|members?|profiles?|author|people\.)/|[?&][\w.-]+="
    r"|/(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{12,}(?:/|$)"
)


#: Hosts of public reference pages: forges, package indexes, standards bodies, licences,
#: documentation and encyclopedias. Their URLs name software and documents, not people.
_PUBLIC_HOSTS = (
    "github.com", "gitlab.com", "bitbucket.org", "sourceforge.net", "sf.net", "savannah.gnu.org",
    "launchpad.net", "salsa.debian.org", "debian.org", "ubuntu.com", "python.org", "pypi.org",
    "readthedocs.io", "readthedocs.org", "apache.org", "gnu.org", "fsf.org", "kernel.org",
    "mozilla.org", "w3.org", "ietf.org", "rfc-editor.org", "opensource.org", "spdx.org",
    "creativecommons.org", "wikipedia.org", "freedesktop.org", "gnome.org", "kde.org",
    "cpan.org", "metacpan.org", "npmjs.com", "rubygems.org", "crates.io", "golang.org",
    "pkg.go.dev", "maven.org", "java.com", "oracle.com", "microsoft.com", "google.com",
    "googlesource.com", "chromium.org", "llvm.org", "gcc.gnu.org", "sqlite.org",
    "postgresql.org", "mysql.com", "php.net", "perl.org", "ruby-lang.org", "rust-lang.org",
    "nodejs.org", "docker.com", "kubernetes.io", "spacy.io", "pytorch.org", "numpy.org",
    "scipy.org", "iana.org", "unicode.org", "iso.org",
)  # fmt: skip
_PERSONAL_HOST = re.compile(r"(?i)^(?:people|users?|members?|home|homepages?|~)\.")


_LIST_PAGE = re.compile(r"(?i)/(?:mailman/listinfo|pipermail|mailman/options|lists?)/")
_URL_CUE = re.compile(
    r"(?i)(?:\b(?:my|our)\s+(?:own\s+)?(?:web\s*site|site|blog|page|home\s*page|portfolio"
    r"|profile|photos?|pictures?|videos?|channel|feed|account)\b|\b(?:web\s*site|home\s*page"
    r"|homepage|web|blog|profile)\s*:|\bshared\s+(?:\w+\s+){0,3}with\s+you|\bposted\s+a\s+"
    r"(?:photo|picture|video|link)|\b(?:follow|find|reach|contact)\s+me\b)[^\n]{0,40}$"
)


#: Mailboxes of a role or a mailing list, not a person: no evidence that a URL is personal.
_ROLE_MAILBOX = re.compile(
    r"^(?:info|mail|admin|contact|sales|support|help|webmaster|postmaster|root|team|news"
    r"|no-?reply|office|press|abuse|security|hostmaster|owner|bugs)$"
    r"|(?:^|[-_.+])(?:users?|list|devel|dev|workers|announce|request|talk|discuss|owner|bounces?)$"
)


def _folded(text: str) -> str:
    """``text`` case-folded with accents removed ("Rühsen" -> "ruhsen"), for URL matching."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _names_a_person(url: str, text: str, others: Sequence[Any]) -> bool:
    """Whether ``url`` holds a name or user name found elsewhere in ``text``.

    The labelling guideline's personal URL: "a URL or host containing a person's name or user
    name" ("github.com/willthames/..." beside "Will Thames <will@thames.id.au>",
    "typer.tiangolo.com" beside "<tiangolo@gmail.com>", "people.redhat.com/ckloiber" beside
    "Chris Kloiber"). Words of four letters or more from detected names, the user part of
    detected addresses, and each name's words run together are looked for in the URL.
    """
    keys: set[str] = set()
    for o in others:
        value = _folded(text[o.start : o.end])
        if o.entity_type == "EMAIL_ADDRESS":
            parts = re.split(r"@|\s+at\s+|\[at\]|\(at\)", value, maxsplit=1)
            user, domain = parts[0].strip("<> "), parts[-1]
            if len(user) >= 4 and not _ROLE_MAILBOX.search(user) and "list" not in domain:
                keys.add(user)
        elif o.entity_type == "PERSON":
            words = re.findall(r"[a-z]+", value)
            keys.update(w for w in words if len(w) >= 5)  # not "mark" in "markdown"
            if len(words) > 1:
                keys.add("".join(words))
    target = _folded(url)
    return any(k in target for k in keys)


def _in_file_name(text: str, r: Any) -> bool:
    """Whether a scheme-less URL match is part of a file name ("aors_n.asm", "LICENSE.md")."""
    url = text[r.start : r.end]
    if "://" in url or url.casefold().startswith("www."):
        return False
    after = text[r.end : r.end + 1]
    before = text[r.start - 1 : r.start] if r.start else ""
    if (after and (after.isalnum() or after == "_")) or before in ("_", "/", "."):
        return True
    host = url.split("/", 1)[0].split(":", 1)[0].rstrip(".").casefold()
    return host.rsplit(".", 1)[-1] in FILE_EXTENSIONS


def _url_kept(text: str, r: Any, others: Sequence[Any]) -> bool:
    """Whether a URL detection is replaced: a URL that points at or identifies a person.

    A URL is replaced when it has a personal path ("~jdoe", "/people/", a query string, a
    long token: home pages, capability and tracking links) or host ("people.debian.org"),
    when the text presents it as someone's ("my website is", "Homepage:", "shared files
    with you"), when it holds a name or user name detected in the same text
    (:func:`_names_a_person`: "github.com/willthames/..." beside "<will@thames.id.au>", even on
    a forge), or when it stands within two lines of a detected name or e-mail address (a
    signature's or an AUTHORS entry's home page). Kept are other pages on public reference
    hosts (:data:`_PUBLIC_HOSTS`: forges, package indexes, standards, licences,
    documentation), mailing-list pages, and URLs with no such sign (news articles, vendors'
    sites): they name documents and organisations, not people. A match inside a file name
    ("aors_n.asm", "LICENSE.md") is no URL at all.
    """
    if _in_file_name(text, r):
        return False
    rest = text[r.start : r.end].split("://", 1)[-1]
    host = rest.split("/", 1)[0].split(":", 1)[0].rstrip(".").casefold()
    if _PERSONAL_PATH.search(rest) or _PERSONAL_HOST.match(host):
        return True
    if _LIST_PAGE.search(rest):
        return False
    host = host.removeprefix("www.")
    if any(host == h or host.endswith("." + h) for h in _PUBLIC_HOSTS):
        return _names_a_person(rest, text, others)
    if _URL_CUE.search(text[max(0, r.start - 120) : r.start]):
        return True
    lo = r.start
    for _ in range(3):
        lo = text.rfind("\n", 0, max(lo - 1, 0)) if lo > 0 else -1
        if lo < 0:
            break
    hi = r.end
    for _ in range(3):
        hi = text.find("\n", hi + 1)
        if hi < 0:
            break
    lo = max(lo, 0)
    hi = len(text) if hi < 0 else hi
    return _names_a_person(rest, text, others) or any(
        o.entity_type in ("PERSON", "EMAIL_ADDRESS") and lo <= o.start and o.end <= hi
        for o in others
    )


# A name that goes on into an organisation's designator names the organisation: "Zuza Software
# Foundation", "Danish Standards Association", "Yamato Software Laboratory", "FarsiWeb, Inc.";
# so does one that starts with it ("Fundación Barcelona Libre"). The guideline labels an
# organisation named after a person only where the text means the person.
_ORGANISATION_AFTER = re.compile(
    rf"[ \t]+(?:(?-i:[A-Z])[\w&.-]*[ \t]+){{0,2}}{ORGANISATION_WORD}\b"
)
_LEGAL_FORM_AFTER = re.compile(rf",[ \t]*{LEGAL_FORM}(?!\w)")
_ORGANISATION_END = re.compile(rf"\b{ORGANISATION_WORD}$")
_ORGANISATION_START = re.compile(rf"(?=\w{{4}}){ORGANISATION_WORD}\s")  # "Fundación X"


def _names_organisation(text: str, result: Any) -> bool:
    """True when a PERSON span is (the start of) an organisation's name."""
    span = text[result.start : result.end]
    return bool(
        _ORGANISATION_END.search(span)
        or _ORGANISATION_START.match(span)
        or _ORGANISATION_AFTER.match(text, result.end)
        or _LEGAL_FORM_AFTER.match(text, result.end)
    )


# A name inside an identifier is part of code: a file name with a known extension
# ("toom_interpolate_8pts.c"), a snake_case word with a digit ("sub_err1_n"), or a CamelCase
# word assigned or called ("LogDebugLevel=9"; of three humps, or of two after a long first
# one, so never "McDonald", "DiCaprio", "LeBlanc", "FitzGerald").
_SNAKE_WITH_DIGIT = re.compile(r"(?=\w*_)(?=\w*\d)\w+")
_CAMEL_CASE = re.compile(r"[A-Z][a-z]+(?:[A-Z][a-z]+){2,}|(?!Fitz)[A-Z][a-z]{3,}[A-Z][a-z]+")


def _in_identifier(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` lies inside a file name or a code identifier."""

    def part(ch: str) -> bool:
        return ch.isalnum() or ch in "_.+-"

    left, right = start, end
    while left > 0 and part(text[left - 1]):
        left -= 1
    while right < len(text) and part(text[right]):
        right += 1
    token = text[left:right].strip(".+-")
    if token == text[start:end].strip(".+-"):
        # A CamelCase word alone may be a user's handle ("MaxxxDong" in a contributor list);
        # assigned or called, it is code.
        return _CAMEL_CASE.fullmatch(token) is not None and text[right : right + 1] in ("=", "(")
    return is_file_name(token) or _SNAKE_WITH_DIGIT.fullmatch(token.split(".")[0]) is not None


def apply_policy(text: str, results: list[Any]) -> list[Any]:
    """The over-scrubbing policy: drop what is not personal data (``docs/scrubbing-policy.md``).

    Groups (spaCy's NRP: nationalities, religions, parties) are never replaced on their own;
    names, places and organisations that are software, licence, header or calendar words are
    kept (:func:`.not_personal.not_personal`), and so is a name that goes on into an
    organisation's designator (:func:`_names_organisation`); URLs only when personal
    (:func:`_url_kept`).
    """
    first = name_lexicon()[0]
    out = []
    for r in results:
        if r.entity_type == "NRP":
            continue
        if r.entity_type in _POLICY_TYPES and (
            not_personal(text[r.start : r.end], first) or _in_identifier(text, r.start, r.end)
        ):
            continue
        if r.entity_type == "PERSON" and _names_organisation(text, r):
            continue
        out.append(r)
    return [r for r in out if r.entity_type != "URL" or _url_kept(text, r, out)]


#: Metadata name of the results :func:`propagate_names` adds.
PROPAGATION = "NamePropagation"
_PROPAGATED_SCORE = 0.5


def propagate_names(text: str, results: Sequence[Any]) -> list[Any]:
    """Every other occurrence of a word of a detected name, as PERSON, in the same text.

    Once "Sonoka Miki" is found, "Sonoka" alone later in the text is the same person, and in
    mail "Guido van Rossum" in a header makes the quote prefix "Guido>" a name. Only words of
    multi-word PERSON spans (or single ones of four letters or more) are propagated, only
    where written with the same capitalisation, and never common words, so one weak
    detection cannot spread a word like "Will" through a text.
    """
    words: set[str] = set()
    for r in results:
        if r.entity_type != "PERSON":
            continue
        toks = [t for t in _TOKEN.findall(text[r.start : r.end]) if not t.endswith(".")]
        for tok in toks:
            if (
                len(tok) >= (3 if len(toks) > 1 else 4)
                and _capitalised(tok)
                and tok.casefold() not in _COMMON_WORDS
                and tok.casefold() not in _EN_STOP
                and not not_personal(tok, software=False)  # "German" of "Austrian German"
            ):
                words.add(tok)
    if not words:
        return []
    taken = sorted((r.start, r.end) for r in results)
    pattern = re.compile(
        r"(?<![\w'’-])(?:"
        + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
        + r")(?![\w])"
    )
    out = []
    for m in pattern.finditer(text):
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        out.append(
            make_result(
                PROPAGATION, PROPAGATION, "PERSON", m.start(), m.end(), score=_PROPAGATED_SCORE
            )
        )
    return out


_BARE_YEAR = re.compile(r"\s*(?:in\s+|the\s+)?(?:1[89]|20)\d\d'?s?\s*")
_DATE_ELEMENT = re.compile(
    rf"""(?x)
    \b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:day|sday|nesday|rsday|urday)?\b\.?  # weekdays
    | \b{_CAP_MONTH}(?![a-z])                                            # months alone
    | \b(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:\s?[ap]\.?m\.?)?      # times
    | \b(?:1[0-2]|0?[1-9])\s?[ap]\.?m\.?(?![a-z])                             # 3pm
    """,
    re.IGNORECASE,
)


def _date_kept(span: str, profile: str) -> bool:
    """Whether a DATE_TIME detection is replaced under the date profile.

    ``default``: only explicit calendar dates (:func:`is_explicit_date`). ``hipaa``: every
    date element (a weekday, a month, a time, "last Tuesday"), except a bare year, which
    Safe Harbor allows to stay.
    """
    if profile == "hipaa":
        return _BARE_YEAR.fullmatch(span) is None
    return is_explicit_date(span)


def _date_elements(text: str, results: Sequence[Any]) -> list[Any]:
    """HIPAA profile: weekdays, month names and times no recognizer reported, as DATE_TIME."""
    taken = [(r.start, r.end) for r in results if r.entity_type == "DATE_TIME"]
    out = []
    for m in _DATE_ELEMENT.finditer(text):
        if m.group(0).casefold() in ("may", "mar", "march", "sat", "sun", "wed"):
            continue  # as common as words as they are as dates: left to the date patterns
        if any(s <= m.start() and m.end() <= e for s, e in taken):
            continue
        out.append(
            make_result("HipaaDateElements", "HipaaDateElements", "DATE_TIME", *m.span(), score=0.6)
        )
    return out


_token_ends: tuple[Any, list[int]] | None = None
"""The last document :func:`_token_at` was asked about, and its tokens' end offsets."""


def _token_at(word: str, start: int, tokens: Any, tokens_indices: list[int]) -> int:
    """Presidio's ``_find_index_of_match_token`` by bisection: the first token ending later.

    Presidio walks the tokens from the first for every result, which is results x tokens: a
    64 KB text of 4,000 results spent 10 M token steps there (7 s of its 9). Tokens do not
    overlap, so their ends rise and the first token with ``start < end`` (Presidio's test:
    the token at ``start``, or the first that covers it) is where ``start`` bisects the ends.
    The ends of the last document asked about are kept (results come document by document).

    Raises:
        ValueError: No token ends after ``start`` (as Presidio's; the message names no text).
    """
    global _token_ends
    cached = _token_ends  # one read: another thread may replace it meanwhile
    if cached is not None and cached[0] is tokens:
        ends = cached[1]
    else:
        ends = [i + len(t) for i, t in zip(tokens_indices, tokens, strict=True)]
        _token_ends = (tokens, ends)
    index = bisect.bisect_right(ends, start)
    if index == len(ends):  # (Presidio's message named the match: never the text here)
        raise ValueError(f"no token ends after offset {start}")
    return index


class FastContextAnalyzerEngine(AnalyzerEngine):
    """``AnalyzerEngine`` whose context enhancement gives Presidio's results for less work.

    Presidio filters every result list once per recognizer (twice) to hand each recognizer
    its own results, and its lemma enhancer deep-copies every result, explanations and all,
    although it only ever changes those of recognizers with context words (~5 % of
    scrubbing time together). Here results are grouped once, the "other results" list is
    built only for recognizers that override ``enhance_using_context``, and the lemma
    enhancer sees only the results it can change (it treats each result on its own).
    Results, scores and order are unchanged (checked on the evaluation corpus). The lemma
    enhancer finds each result's token by bisection (:func:`_token_at`), not from the first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from presidio_analyzer import LemmaContextAwareEnhancer

        super().__init__(*args, **kwargs)
        enhancer = self.context_aware_enhancer
        if type(enhancer) is LemmaContextAwareEnhancer:
            # Presidio's token lookup, by bisection (same answers; see _token_at).
            enhancer._find_index_of_match_token = _token_at  # type: ignore[method-assign]

    def _enhance_using_context(
        self,
        text: str,
        raw_results: list[Any],
        nlp_artifacts: Any,
        recognizers: list[Any],
        context: list[str] | None = None,
    ) -> list[Any]:
        from presidio_analyzer import EntityRecognizer, LemmaContextAwareEnhancer

        key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
        by_id: dict[str, list[Any]] = {}
        for r in raw_results:
            by_id.setdefault(r.recognition_metadata[key], []).append(r)
        results: list[Any] = []
        for recognizer in recognizers:
            own = by_id.get(recognizer.id, [])
            if type(recognizer).enhance_using_context is not EntityRecognizer.enhance_using_context:
                own = recognizer.enhance_using_context(
                    text=text,
                    raw_recognizer_results=own,
                    other_raw_recognizer_results=[
                        r for r in raw_results if r.recognition_metadata[key] != recognizer.id
                    ],
                    nlp_artifacts=nlp_artifacts,
                    context=context,
                )
            results.extend(own)
        enhancer = self.context_aware_enhancer
        if type(enhancer) is not LemmaContextAwareEnhancer or nlp_artifacts is None:
            return list(
                enhancer.enhance_using_context(
                    text=text,
                    raw_results=results,
                    nlp_artifacts=nlp_artifacts,
                    recognizers=recognizers,
                    context=context,
                )
            )
        with_context = {rec.id for rec in recognizers if rec.context}
        boosted = RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY
        todo = [
            i
            for i, r in enumerate(results)
            if r.recognition_metadata
            and r.recognition_metadata.get(key) in with_context
            and not r.recognition_metadata.get(boosted)
        ]
        if todo:
            enhanced = enhancer.enhance_using_context(
                text=text,
                raw_results=[results[i] for i in todo],
                nlp_artifacts=nlp_artifacts,
                recognizers=recognizers,
                context=context,
            )
            for i, r in zip(todo, enhanced, strict=True):
                results[i] = r
        return results


class RefiningAnalyzerEngine(FastContextAnalyzerEngine):
    """``AnalyzerEngine`` whose results pass through :func:`refine_results`.

    The refinement needs every recognizer's output at once (an NER span is dropped because a
    pattern matched the same characters), so it runs after Presidio's own de-duplication,
    inside ``analyze`` so that ``BatchAnalyzerEngine`` gets it too.
    """

    #: The scrub policy's date profile (``default`` or ``hipaa``), set by the Scrubber.
    date_profile = "default"

    def analyze(self, text: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Presidio's analysis, refined."""
        return refine_results(
            text, super().analyze(text, *args, **kwargs), date_profile=self.date_profile
        )


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

#: Presidio recognizers replaced by the ones above.
REMOVED = ("CreditCardRecognizer", "NhsRecognizer", "PhoneRecognizer")

#: A necessary condition for Presidio's URL patterns: every one needs a dot followed by the
#: first letter of a top-level domain (case-insensitively; the class also holds the four
#: non-ASCII letters that case-fold into a-z). The URL regex tries a match at every
#: alphanumeric character (~4 % of scrubbing time); texts without such a dot skip it.
_URL_GATE = re.compile("[.][a-z\u0130\u0131\u017f\u212a]", re.IGNORECASE)


def _gate(recognizer: Any, gate: re.Pattern[str]) -> None:
    """Make ``recognizer`` return nothing, without running, for texts ``gate`` cannot find.

    Only for gates that every match of the recognizer must contain: results are unchanged.
    """
    analyze = recognizer.analyze

    def gated(*args: Any, **kwargs: Any) -> Any:
        text = kwargs["text"] if "text" in kwargs else args[0]
        if gate.search(text) is None:
            return []
        return analyze(*args, **kwargs)

    recognizer.analyze = gated


_TLDS_START = "(?:(?:com)"
_TLD = re.compile(r"\(\?:([a-z0-9-]+)\)")


def _tld_trie(tlds: Sequence[str]) -> str:
    """A regex that matches where one of ``tlds`` starts: their trie, ending at any whole one."""
    trie: dict[str, Any] = {}
    for tld in tlds:
        node = trie
        for ch in tld:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        if "" in node:  # a whole TLD: enough for the lookahead
            return ""
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items())]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(trie)


def _fast_tlds(recognizer: Any) -> None:
    """Put a trie of the URL patterns' TLDs, as a lookahead, before their TLD alternation.

    Presidio's URL patterns try a domain of up to 253 characters from every place, backing off
    to each dot, and after each dot its 675 TLDs one by one: 8 KB of "Ab.Ab.Ab." took 6 s
    (64 KB, one AnalyzeText, 50 s). The lookahead fails in a few steps where no TLD starts;
    where one does, the original alternation runs, in its order, so every match is the same
    (3,518 texts compared: the real-text PII set and random strings). A pattern without the
    expected alternation (another Presidio release) is left as it is.
    """
    patterns = []
    for pattern in recognizer.patterns:
        rx = pattern.regex
        start = rx.find(_TLDS_START)
        if start < 0 or rx[:start].endswith(")"):  # not Presidio's layout, or done already
            patterns.append(pattern)
            continue
        depth = 0
        for end in range(start, len(rx)):
            depth += {"(": 1, ")": -1}.get(rx[end], 0)
            if depth == 0:
                break
        lookahead = f"(?={_tld_trie(_TLD.findall(rx[start : end + 1]))})"
        # A new Pattern: Presidio's recognizers share theirs between instances.
        patterns.append(Pattern(pattern.name, rx[:start] + lookahead + rx[start:], pattern.score))
    recognizer.patterns = patterns


def configure_registry(registry: Any, *, phone_regions: Sequence[str] | None = None) -> None:
    """Swap Presidio's card, phone and NHS recognizers for ours and add the new ones.

    Also clears IGNORECASE from the IBAN recognizer: Presidio's default configuration loads
    it with that flag, and then an IBAN followed by a word ("IBAN BE66 7778 8377 0242
    please") is extended into the word, fails the checksum and is lost (measured: all
    Belgian and Spanish IBANs followed by text). The URL recognizer is skipped for texts
    that cannot hold a URL (:data:`_URL_GATE`), and its TLDs are looked up through a trie
    first (:func:`_fast_tlds`). ``phone_regions`` are the national formats
    tried for numbers without a country code (the policy's ``phone_regions``).
    """
    for name in REMOVED:
        registry.remove_recognizer(name)
    for rec in registry.recognizers:
        if rec.name == "IbanRecognizer":
            rec.global_regex_flags = re.MULTILINE | re.DOTALL
        elif rec.name == "UrlRecognizer":
            _fast_tlds(rec)
            _gate(rec, _URL_GATE)
    for recognizer in (
        InternationalPhoneRecognizer(),
        NationalPhoneRecognizer(regions=phone_regions or DEFAULT_PHONE_REGIONS),
        AddressBlockRecognizer(),
        ContactNameRecognizer(),
        ObfuscatedEmailRecognizer(),
        LuhnCardRecognizer(),
        ContextNhsRecognizer(),
        StreetAddressRecognizer(),
        AccountNumberRecognizer(),
        TextDateRecognizer(),
        NameLexiconRecognizer(),
        PersonCueRecognizer(),
    ):
        registry.add_recognizer(recognizer)
