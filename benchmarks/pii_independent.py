"""Evaluation sets whose PII nobody on this team generated (issue 13).

``presidio_evaluator_set``: sentences from Microsoft's presidio-evaluator data generator
(presidio-research, MIT code and templates; its 3,000 fake identities come from
FakeNameGenerator, CC BY-SA 3.0 US, so the set is generated at run time and never committed).
Its names are not Faker's, which privsynth's name lexicon is built from, so PERSON recall on it
is not inflated by the lexicon. Gold spans are the generator's own offsets. The set is frozen by
its seed: the person table is built with Python's unseeded ``random`` and dates follow the
clock, so both are pinned here (``random.seed``, ``freezegun``), and a digest of the texts is
printed to show two runs scored the same set.

Install for the benchmark only (not a project dependency; ``--no-deps`` keeps its transformers
and plotly requirements out of the environment)::

    .venv/bin/pip install --no-deps presidio-evaluator==0.3.2
    .venv/bin/pip install pandas freezegun

Entity types map onto the benchmark's (``GPE`` and ``ZIP_CODE`` count as LOCATION,
``DOMAIN_NAME`` as URL); types the benchmark has no row for (ORGANIZATION, TITLE, AGE, NRP,
US_DRIVER_LICENSE) are dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pii_eval_data import Example, Span

TYPE_MAP = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "STREET_ADDRESS",
    "GPE": "LOCATION",
    "ZIP_CODE": "POSTCODE",
    "CREDIT_CARD": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "DATE_TIME": "DATE_TIME",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "DOMAIN_NAME": "URL",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
}


def texts_digest(examples: Sequence[Example]) -> str:
    """A short digest of the examples' texts: two runs printing it scored the same set."""
    return hashlib.sha256("\x00".join(e.text for e in examples).encode()).hexdigest()[:16]


def presidio_evaluator_set(n: int, seed: int) -> tuple[list[Example], str, Counter[str]]:
    """``n`` generated sentences with gold spans, their digest, and the dropped type counts.

    Raises:
        SystemExit: presidio-evaluator (or freezegun) is not installed; says how to install.
    """
    try:
        from freezegun import freeze_time
        from presidio_evaluator.data_generator import PresidioSentenceFaker
    except ImportError as exc:
        raise SystemExit(
            f"--corpus presidio-evaluator needs {exc.name}: .venv/bin/pip install --no-deps "
            "presidio-evaluator==0.3.2 && .venv/bin/pip install pandas freezegun"
        ) from None
    with freeze_time("2024-01-01 00:00:00"):
        random.seed(seed)
        faker = PresidioSentenceFaker(locale="en_US", lower_case_ratio=0.05, random_seed=seed)
        records = faker.generate_new_fake_sentences(n)
    dropped: Counter[str] = Counter()
    examples = []
    for i, rec in enumerate(records):
        spans = []
        for s in rec.spans:
            mapped = TYPE_MAP.get(s.entity_type)
            if mapped is None:
                dropped[s.entity_type] += 1
                continue
            spans.append(Span(s.start_position, s.end_position, mapped))
        examples.append(
            Example(
                text=rec.full_text,
                spans=tuple(spans),
                domain="presidio-evaluator",
                template_id=f"pe-{rec.template_id if rec.template_id is not None else i}",
                split="heldout",  # never tuned on
            )
        )
    digest = texts_digest(examples)
    return examples, digest, dropped


# --- Faker's postal layouts: a tuning screen for street addresses -------------------------

#: Faker address-format fields by what they are; a format with any other field is skipped.
_FAKER_STREET = frozenset(
    {
        "street_address", "street_name", "street_suffix", "building_number", "building_name",
        "building_prefix", "house_number", "secondary_address", "road", "road_name",
        "highway_name", "chome", "ban", "gou",
    }
)  # fmt: skip
_FAKER_POSTCODE = frozenset({"postcode", "postalcode"})
_FAKER_PLACE = frozenset(
    {
        "city", "city_name", "city_prefix", "town", "state", "state_abbr", "province",
        "province_abbr", "region", "prefecture", "district", "borough", "village",
        "village_prefix", "village_suffix", "settlement", "settlement_suffix", "commune",
        "metropolitan_city", "administrative_unit", "wilaya", "amphoe", "tambon",
        "estado_sigla", "bairro", "city_state", "commune_and_region",
    }
)  # fmt: skip
_FIELD = re.compile(r"\{\{(\w+)\}\}")

#: How the address sits in its text: a signature block, a sentence, a glibc-style field.
_FAKER_CONTEXTS = (
    "{name}\n{lines}\n",
    "Please send the signed forms to {name}, {oneline}, before the end of the month.",
    'address "{oneline}"',
)


def faker_address_set(n: int, seed: int) -> tuple[list[Example], str, Counter[str]]:
    """``n`` postal addresses in Faker's distinct locale layouts (52), with gold street spans.

    Faker's locale providers write addresses the way each country does (house number after
    the street, postcode before the town, units, districts, non-Latin scripts); privsynth's
    address rules use none of its street lists, only its country names. A *tuning* screen
    for layouts, like presidio-evaluator's seed 7: the names beside the addresses come from
    Faker too, which privsynth's name lexicon is built from, so PERSON recall here says
    nothing. Street, postcode and place fields are gold at the offsets they were written to.

    Returns:
        The examples (``domain`` = the Faker locale), a digest of their texts and the number
        of addresses per locale.
    """
    from faker import Faker
    from faker.config import AVAILABLE_LOCALES

    rng = random.Random(seed)
    fakers: list[tuple[str, Any, list[str]]] = []
    seen: set[tuple[str, ...]] = set()
    for locale in sorted(AVAILABLE_LOCALES):
        fake = Faker(locale)
        provider = next(p for p in fake.providers if ".address" in type(p).__module__)
        formats = [
            f
            for f in getattr(provider, "address_formats", ()) or ()
            if set(_FIELD.findall(f)) <= _FAKER_STREET | _FAKER_POSTCODE | _FAKER_PLACE
        ]
        # Many locales inherit the US layouts and street words; each layout is drawn once.
        layout = tuple(
            str(getattr(provider, a, ""))[:400]
            for a in (
                "address_formats",
                "street_address_formats",
                "street_name_formats",
                "street_suffixes",
            )
        )
        if formats and layout not in seen:
            seen.add(layout)
            fake.seed_instance(rng.randrange(1 << 30))
            fakers.append((locale, fake, formats))
    examples: list[Example] = []
    locales: Counter[str] = Counter()
    for i in range(n):
        locale, fake, formats = fakers[i % len(fakers)]
        fmt = rng.choice(formats)
        context = _FAKER_CONTEXTS[i % len(_FAKER_CONTEXTS)]
        address: list[tuple[str, str | None]] = []  # (text, gold type or None)
        pos = 0
        for m in _FIELD.finditer(fmt):
            address.append((fmt[pos : m.start()], None))
            field_name = m.group(1)
            kind = (
                "STREET_ADDRESS"
                if field_name in _FAKER_STREET
                else "POSTCODE"
                if field_name in _FAKER_POSTCODE
                else "LOCATION"
            )
            address.append((str(getattr(fake, field_name)()), kind))
            pos = m.end()
        address.append((fmt[pos:], None))
        pieces: list[tuple[str, str | None]] = []
        for j, chunk in enumerate(re.split(r"\{(name|lines|oneline)\}", context)):
            if j % 2 == 0:
                pieces.append((chunk, None))
            elif chunk == "name":
                pieces.append((fake.name(), "PERSON"))
            elif chunk == "lines":
                pieces.extend(address)
            else:
                pieces.extend((re.sub(r"\s*\n\s*", ", ", t), k) for t, k in address)
        text, gold = "", []
        for chunk, kind in pieces:
            if kind and chunk.strip():
                gold.append(Span(len(text), len(text) + len(chunk), kind))
            text += chunk
        examples.append(
            Example(
                text=text, spans=tuple(gold), domain=locale, template_id=f"faker-{i}", split="dev"
            )
        )
        locales[locale] += 1
    digest = texts_digest(examples)
    return examples, digest, locales


# --- the real-text set (hand-labelled, committed) -------------------------------------------

REAL_TEXT_DIR = Path(__file__).resolve().parent / "data" / "pii_real"


def real_text_split(record_id: str) -> str:
    """The frozen split of a real-text record, from its id alone (docs/pii-labelling-guideline.md).

    Fixed before any scoring: ``test`` is reported and never read while tuning, ``dev`` is.
    """
    return "test" if int(hashlib.sha256(record_id.encode()).hexdigest()[:8], 16) % 5 < 3 else "dev"


def real_text_set(split: str, register: str = "") -> tuple[list[Example], str, Counter[str]]:
    """The hand-labelled real-text records of ``split`` (``dev``, ``test`` or ``all``).

    Returns the examples (``domain`` = register), a digest of their texts, and the record count
    per register; ``register`` keeps one register's records only.
    """
    examples: list[Example] = []
    registers: Counter[str] = Counter()
    for path in sorted(REAL_TEXT_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            rec_split = real_text_split(rec["id"])
            if (split != "all" and rec_split != split) or register not in ("", rec["register"]):
                continue
            registers[rec["register"]] += 1
            examples.append(
                Example(
                    text=rec["text"],
                    spans=tuple(Span(s, e, t) for s, e, t in rec["spans"]),
                    domain=rec["register"],
                    template_id=rec["id"],
                    split=rec_split,
                )
            )
    digest = texts_digest(examples)
    return examples, digest, registers


# --- removal scoring: what a scrubber leaves behind ----------------------------------------

#: Rows of the removal table, in order; types a corpus has no gold for print "n/a".
REMOVAL_TYPES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "POSTCODE",
    "STREET_ADDRESS",
    "LOCATION",
    "DATE_TIME",
    "IP_ADDRESS",
    "URL",
    "IBAN_CODE",
    "US_SSN",
)
#: The issue's per-type targets (character-level recall >= 0.85).
TARGET_TYPES = frozenset(
    {"PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "POSTCODE", "STREET_ADDRESS"}
)


@dataclass
class Removal:
    """Counts for one system on one corpus: type-blind removal, as a scrubber's user sees it.

    A gold span is *removed* when predictions (any type) cover at least half of its non-space
    characters; ``chars`` is the share of gold non-space characters covered. A gold value
    *survives* when it still occurs, case-insensitively and at word boundaries, in the text
    with every prediction blanked out. Precision is over predicted non-space characters: the
    share that lies inside some gold span (any type), per predicted type and overall; only
    meaningful on fully labelled text (the real-text set).
    """

    spans: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    gold_chars: Counter[str] = field(default_factory=Counter)
    covered_chars: Counter[str] = field(default_factory=Counter)
    survived: Counter[str] = field(default_factory=Counter)
    pred_chars: Counter[str] = field(default_factory=Counter)
    pred_in_gold: Counter[str] = field(default_factory=Counter)
    misses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    false_pos: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, ex: Example, preds: Sequence[Any]) -> None:
        """Score one example's resolved predictions (objects with start, end, entity_type)."""
        text = ex.text
        covered: set[int] = set()
        blanked = list(text)
        for p in preds:
            covered.update(i for i in range(p.start, p.end) if not text[i].isspace())
            for i in range(p.start, p.end):
                blanked[i] = "\x00"
        output = "".join(blanked).casefold()
        gold_cover: set[int] = set()
        for g in ex.spans:
            chars = {i for i in range(g.start, g.end) if not text[i].isspace()}
            gold_cover |= chars
            t = g.entity_type
            self.spans[t] += 1
            self.gold_chars[t] += len(chars)
            hit = len(chars & covered)
            self.covered_chars[t] += hit
            if chars and 2 * hit >= len(chars):
                self.removed[t] += 1
            else:
                self.misses[t].append(f"{text[g.start : g.end]!r} in {_context(text, g)!r}")
            value = text[g.start : g.end].strip().casefold()
            if value and re.search(rf"(?<!\w){re.escape(value)}(?!\w)", output):
                self.survived[t] += 1
        for p in preds:
            chars = {i for i in range(p.start, p.end) if not text[i].isspace()}
            self.pred_chars[p.entity_type] += len(chars)
            inside = len(chars & gold_cover)
            self.pred_in_gold[p.entity_type] += inside
            if chars and 2 * inside < len(chars):
                self.false_pos[p.entity_type].append(
                    f"{text[p.start : p.end]!r} in {_context(text, p)!r}"
                )


def _context(text: str, span: Any, width: int = 60) -> str:
    return text[max(0, span.start - width) : span.end + width].replace("\n", " | ")


def _r(a: int, b: int) -> str:
    return f"{a / b:5.3f}" if b else "  n/a"


def print_removal_table(title: str, tallies: dict[str, Removal], precision: bool) -> None:
    """Per-type character recall, span recall, survival (and precision), one column per system."""
    names = list(tallies)
    first = tallies[names[0]]
    cols = "chars  spans  surv" + ("  prec" if precision else "")
    print(f"\n{title}")
    print(f"{'type':15s} {'gold':>5s} | " + " | ".join(f"{n:^{len(cols)}s}" for n in names))
    print(f"{'':15s} {'':>5s} | " + " | ".join(cols for _ in names))
    types = [t for t in REMOVAL_TYPES if first.spans[t]] + sorted(
        {t for r in tallies.values() for t in r.pred_chars} - set(REMOVAL_TYPES)
    )
    for t in types:
        print(
            f"{t:15s} {first.spans[t]:5d} | "
            + " | ".join(_cell(r, (t,), precision) for r in tallies.values())
        )
    every = tuple(first.spans)
    print(
        f"{'ALL':15s} {sum(first.spans.values()):5d} | "
        + " | ".join(_cell(r, every, precision, pred_all=True) for r in tallies.values())
    )


def _cell(r: Removal, types: Sequence[str], precision: bool, *, pred_all: bool = False) -> str:
    """One system's chars / spans / surv (/ prec) over ``types`` (precision over every
    predicted type for the ALL row, since predictions may carry types with no gold)."""

    def total(counter: Counter[str], keys: Iterable[str]) -> int:
        return sum(counter[k] for k in keys)

    cell = (
        f"{_r(total(r.covered_chars, types), total(r.gold_chars, types))}  "
        f"{_r(total(r.removed, types), total(r.spans, types))} "
        f"{_r(total(r.survived, types), total(r.spans, types))}"
    )
    if precision:
        pred = tuple(r.pred_chars) if pred_all else types
        cell += f" {_r(total(r.pred_in_gold, pred), total(r.pred_chars, pred))}"
    return cell
