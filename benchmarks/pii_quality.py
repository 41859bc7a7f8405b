"""Measure PII detection quality: privsynth's Scrubber versus plain Presidio, one run.

Both analyzers run on the same spaCy pipeline (``server/conf/nlp.yaml``) over the same
generated evaluation set (``benchmarks/pii_eval_data.py``) with the same score threshold (the
Scrubber's, 0.35). "Plain Presidio" is ``AnalyzerEngine`` with its default recognizers; the only
change is the offline e-mail recognizer (same regex and validation, bundled suffix list), since
the stock one would try to fetch the public-suffix list and there is no network here.

Matching rule (span overlap, whitespace ignored):

* Overlapping predictions are first resolved as Presidio's anonymizer does (a prediction
  contained in another is dropped; of equal spans the higher score wins), so what is scored is
  what would be replaced.
* A gold span is *recalled* when predictions of an accepted type cover at least half of its
  non-space characters. Accepted types: the gold type itself, plus LOCATION <-> STREET_ADDRESS
  (either covers an address) and US_BANK_NUMBER for ACCOUNT_NUMBER.
* A prediction is *correct* when at least half of its non-space characters lie inside gold
  spans whose type accepts the predicted type. Per-type precision is grouped by the predicted
  type; types that have no gold label (UK_NHS, NRP, US_DRIVER_LICENSE, ...) only have a
  precision row.
* F2 = 5PR / (4P + R): recall weighs more, since a missed identifier leaks.
* ``chars`` is the share of gold non-space characters that any prediction covers, whatever its
  type: what actually gets redacted.

Run: ``.venv/bin/python benchmarks/pii_quality.py [--n 1500] [--seed S] [--examples TYPE]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_eval_data import ENTITY_TYPES, Example, build_eval_set

THRESHOLD = 0.35
STRUCTURED = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
)
ACCEPTS: dict[str, set[str]] = {t: {t} for t in ENTITY_TYPES}
ACCEPTS["STREET_ADDRESS"].add("LOCATION")
ACCEPTS["LOCATION"].add("STREET_ADDRESS")
ACCEPTS["ACCOUNT_NUMBER"].add("US_BANK_NUMBER")


@dataclass(frozen=True)
class Pred:
    start: int
    end: int
    entity_type: str
    score: float


@dataclass
class Tally:
    gold: Counter[str] = field(default_factory=Counter)
    recalled: Counter[str] = field(default_factory=Counter)
    pred: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    gold_chars: Counter[str] = field(default_factory=Counter)
    covered_chars: Counter[str] = field(default_factory=Counter)
    misses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    false_pos: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def resolve(preds: Sequence[Pred]) -> list[Pred]:
    """Drop contained predictions and keep the best of equal spans, as the anonymizer does."""
    order = sorted(preds, key=lambda p: (p.start, -p.end, -p.score))
    out: list[Pred] = []
    largest_end = -1
    for p in order:
        if out and (p.start, p.end) == (out[-1].start, out[-1].end):
            continue  # equal span, lower or equal score
        if p.end <= largest_end:
            continue  # contained in an earlier, longer prediction
        out.append(p)
        largest_end = max(largest_end, p.end)
    return out


def _nonspace(text: str, start: int, end: int) -> set[int]:
    return {i for i in range(start, end) if not text[i].isspace()}


def score_example(ex: Example, preds: Sequence[Pred], tally: Tally) -> None:
    text = ex.text
    any_cover: set[int] = set()
    cover_by_type: dict[str, set[int]] = defaultdict(set)
    for p in preds:
        chars = _nonspace(text, p.start, p.end)
        any_cover |= chars
        cover_by_type[p.entity_type] |= chars
    for g in ex.spans:
        chars = _nonspace(text, g.start, g.end)
        accepted: set[int] = set()
        for t in ACCEPTS[g.entity_type]:
            accepted |= cover_by_type.get(t, set())
        tally.gold[g.entity_type] += 1
        tally.gold_chars[g.entity_type] += len(chars)
        tally.covered_chars[g.entity_type] += len(chars & any_cover)
        if chars and len(chars & accepted) * 2 >= len(chars):
            tally.recalled[g.entity_type] += 1
        else:
            tally.misses[g.entity_type].append(f"{text[g.start : g.end]!r} in {text!r}")
    for p in preds:
        chars = _nonspace(text, p.start, p.end)
        inside: set[int] = set()
        for g in ex.spans:
            if p.entity_type in ACCEPTS[g.entity_type]:
                inside |= _nonspace(text, g.start, g.end)
        tally.pred[p.entity_type] += 1
        if chars and len(chars & inside) * 2 >= len(chars):
            tally.correct[p.entity_type] += 1
        else:
            tally.false_pos[p.entity_type].append(f"{text[p.start : p.end]!r} in {text!r}")


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _f2(p: float | None, r: float | None) -> float | None:
    if p is None or r is None or (4 * p + r) == 0:
        return None
    return 5 * p * r / (4 * p + r)


def _fmt(x: float | None) -> str:
    return "    -" if x is None else f"{x:5.3f}"


def _row_stats(t: Tally, entity: str) -> tuple[float | None, ...]:
    p = _ratio(t.correct[entity], t.pred[entity])
    r = _ratio(t.recalled[entity], t.gold[entity])
    return p, r, _f2(p, r), _ratio(t.covered_chars[entity], t.gold_chars[entity])


def print_table(title: str, tallies: dict[str, Tally]) -> None:
    names = list(tallies)
    print(f"\n{title}")
    head = f"{'entity':16s} {'gold':>5s}"
    for name in names:
        head += f" | {name:^31s}"
    print(head)
    sub = f"{'':16s} {'':>5s}"
    for _ in names:
        sub += f" | {'pred':>5s} {'P':>5s} {'R':>5s} {'F2':>5s} {'chars':>5s}"
    print(sub)
    print("-" * len(sub))
    gold_types = [e for e in ENTITY_TYPES if any(t.gold[e] for t in tallies.values())]
    extra = sorted({e for t in tallies.values() for e in t.pred} - set(gold_types))
    for entity in [*gold_types, *extra]:
        first = next(iter(tallies.values()))
        line = f"{entity:16s} {first.gold[entity]:5d}"
        for t in tallies.values():
            p, r, f2, cov = _row_stats(t, entity)
            line += f" | {t.pred[entity]:5d} {_fmt(p)} {_fmt(r)} {_fmt(f2)} {_fmt(cov)}"
        print(line)
    print("-" * len(sub))
    for label, subset in (("structured ids", STRUCTURED), ("ALL", tuple(gold_types))):
        first = next(iter(tallies.values()))
        line = f"{label:16s} {sum(first.gold[e] for e in subset):5d}"
        for t in tallies.values():
            gold = sum(t.gold[e] for e in subset)
            rec = sum(t.recalled[e] for e in subset)
            if label == "ALL":
                pred, corr = sum(t.pred.values()), sum(t.correct.values())
            else:
                pred = sum(t.pred[e] for e in subset)
                corr = sum(t.correct[e] for e in subset)
            p, r = _ratio(corr, pred), _ratio(rec, gold)
            cov = _ratio(
                sum(t.covered_chars[e] for e in subset), sum(t.gold_chars[e] for e in subset)
            )
            line += f" | {pred:5d} {_fmt(p)} {_fmt(r)} {_fmt(_f2(p, r))} {_fmt(cov)}"
        print(line)


def _plain_presidio(conf: dict[str, Any]) -> Callable[[list[str]], list[list[Pred]]]:
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from privsynth.server.scrubbing.scrubber import _offline_email_recognizer

    nlp_engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    analyzer.registry.remove_recognizer("EmailRecognizer")
    analyzer.registry.add_recognizer(_offline_email_recognizer())
    batch = BatchAnalyzerEngine(analyzer_engine=analyzer)

    def run(texts: list[str]) -> list[list[Pred]]:
        out = batch.analyze_iterator(texts, language="en", batch_size=64, score_threshold=THRESHOLD)
        return [[Pred(r.start, r.end, r.entity_type, r.score) for r in rs] for rs in out]

    return run


def _privsynth() -> Callable[[list[str]], list[list[Pred]]]:
    from privsynth.server.scrubbing.scrubber import Scrubber

    scrubber = Scrubber(score_threshold=THRESHOLD)
    scrubber.load()

    def run(texts: list[str]) -> list[list[Pred]]:
        out = scrubber.analyze_batch(texts)
        return [[Pred(r.start, r.end, r.entity_type, r.score) for r in rs] for rs in out]

    return run


def _privsynth_names_unseen(examples: Sequence[Example]) -> Callable[[list[str]], list[list[Pred]]]:
    """The Scrubber with every word of every gold name removed from its name lexicon.

    The evaluation names come from Faker, like the lexicon, so the plain run is flattering for
    PERSON; this run shows recall on names the lexicon has never seen (cue words and spaCy
    only, plus lexicon hits on other words).
    """
    import re

    from privsynth.server.scrubbing.recognizers import (
        NameLexiconRecognizer,
        PersonCueRecognizer,
        name_lexicon,
    )
    from privsynth.server.scrubbing.scrubber import Scrubber

    gold_words = {
        w.casefold()
        for ex in examples
        for s in ex.spans
        if s.entity_type == "PERSON"
        for w in re.split(r"[\s.-]+", ex.text[s.start : s.end])
        if w
    }
    first, last = name_lexicon()
    first, last = first - gold_words, last - gold_words
    scrubber = Scrubber(score_threshold=THRESHOLD)
    scrubber.load()
    registry = scrubber._analyzer.registry
    for cls in (NameLexiconRecognizer, PersonCueRecognizer):
        registry.remove_recognizer(cls.__name__)
        registry.add_recognizer(cls(first_names=first, last_names=last))

    def run(texts: list[str]) -> list[list[Pred]]:
        out = scrubber.analyze_batch(texts)
        return [[Pred(r.start, r.end, r.entity_type, r.score) for r in rs] for rs in out]

    return run


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500, help="examples to generate")
    ap.add_argument("--seed", type=int, default=20240603)
    ap.add_argument(
        "--examples",
        metavar="TYPE",
        default="",
        help="print privsynth's misses and false positives of TYPE (synthetic data only)",
    )
    ap.add_argument("--only", choices=["privsynth", "presidio"], default=None)
    ap.add_argument(
        "--corpus",
        choices=["generated", "presidio-evaluator", "real-text", "faker-addresses"],
        default="generated",
        help="generated: this repo's own templates (an upper bound: the recognizers' authors "
        "wrote them); presidio-evaluator: Microsoft's generator, nobody here wrote its PII "
        "(see pii_independent.py for the install line); real-text: the hand-labelled public "
        "text in benchmarks/data/pii_real; faker-addresses: Faker's postal layouts of ~50 "
        "countries, a tuning screen for street addresses (never reported as evidence)",
    )
    ap.add_argument(
        "--split",
        choices=["dev", "test", "all"],
        default="test",
        help="real-text only: test is the frozen, reported split; tune on dev",
    )
    ap.add_argument(
        "--register",
        default="",
        help="real-text only: score one register (e.g. glibc-locales) with its own per-type table",
    )
    args = ap.parse_args(argv)

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    if args.corpus != "generated":
        return _independent(args)
    examples = build_eval_set(args.n, args.seed)
    texts = [ex.text for ex in examples]
    conf_path = Path(str(resources.files("privsynth.server") / "conf" / "nlp.yaml"))
    conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))

    systems: dict[str, Callable[[], Callable[[list[str]], list[list[Pred]]]]] = {
        "plain Presidio": lambda: _plain_presidio(conf),
        "privsynth": _privsynth,
    }
    if not args.only:
        systems["names unseen"] = lambda: _privsynth_names_unseen(examples)
    if args.only == "privsynth":
        del systems["plain Presidio"]
    elif args.only == "presidio":
        del systems["privsynth"]

    all_t: dict[str, Tally] = {}
    held_t: dict[str, Tally] = {}
    dev_t: dict[str, Tally] = {}
    timings: list[str] = []
    for name, factory in systems.items():
        t0 = time.perf_counter()
        run = factory()
        t1 = time.perf_counter()
        preds = run(texts)
        t2 = time.perf_counter()
        timings.append(
            f"{name}: load {t1 - t0:.1f} s, analyze {1000 * (t2 - t1) / len(texts):.1f} ms/text"
        )
        all_t[name], held_t[name], dev_t[name] = Tally(), Tally(), Tally()
        for ex, ps in zip(examples, preds, strict=True):
            resolved = resolve(ps)
            score_example(ex, resolved, all_t[name])
            if ex.split == "heldout" or ex.domain == "negative":
                score_example(ex, resolved, held_t[name])
            if ex.split == "dev":
                score_example(ex, resolved, dev_t[name])

    n_held = sum(ex.split == "heldout" for ex in examples)
    n_neg = sum(ex.domain == "negative" for ex in examples)
    print(
        f"{len(examples)} examples (seed {args.seed}), {n_held} from held-out templates, "
        f"{n_neg} PII-free; threshold {THRESHOLD}; match: >=50% non-space char overlap"
    )
    unseen_all = all_t.pop("names unseen", None)
    unseen_held = held_t.pop("names unseen", None)
    print_table("All examples", all_t)
    if unseen_all is not None:
        p, r, f2, cov = _row_stats(unseen_all, "PERSON")
        print(
            f"PERSON with every evaluation name removed from privsynth's lexicon: "
            f"P {_fmt(p)} R {_fmt(r)} F2 {_fmt(f2)} chars {_fmt(cov)}"
        )
    print_table("Held-out templates (+ the PII-free negatives)", held_t)
    if unseen_held is not None:
        p, r, f2, cov = _row_stats(unseen_held, "PERSON")
        print(
            f"PERSON with every evaluation name removed from privsynth's lexicon: "
            f"P {_fmt(p)} R {_fmt(r)} F2 {_fmt(f2)} chars {_fmt(cov)}"
        )
    print()
    for line in timings:
        print(line)

    if args.examples:
        # Only the development split: held-out templates are not for tuning.
        t = dev_t.get("privsynth") or next(iter(dev_t.values()))
        print_examples(t, args.examples, limit=40, where=" (dev split)")
    return 0


def print_examples(tally: Any, entity: str, *, limit: int, where: str = "") -> None:
    """The first ``limit`` misses of ``entity`` and false positives predicted as it (tuning
    splits only: a ``Tally`` or a ``pii_independent.Removal``, both keep them by type)."""
    print(f"\nmisses of {entity}{where}:")
    for line in tally.misses.get(entity, [])[:limit]:
        print("  ", line)
    print(f"\nfalse positives predicted as {entity}{where}:")
    for line in tally.false_pos.get(entity, [])[:limit]:
        print("  ", line)


def print_street_by_layout(by_layout: dict[str, dict[str, Any]]) -> None:
    """Street and postcode character recall per Faker layout, worst street first."""
    rows = []
    for layout, tallies in by_layout.items():
        cells = []
        for t in tallies.values():
            for kind in ("STREET_ADDRESS", "POSTCODE"):
                g = t.gold_chars[kind]
                cells.append(t.covered_chars[kind] / g if g else float("nan"))
        rows.append((cells[0], layout, cells))
    systems = ", ".join(next(iter(by_layout.values())))
    print(f"\nstreet / postcode chars per layout ({systems})")
    for _, layout, cells in sorted(rows, key=lambda r: (r[0] != r[0], r[0])):
        print(f"  {layout:8s} " + "  ".join(f"{c:5.3f}" for c in cells))


#: The presidio-evaluator seed reported as the frozen test split; tune on any other seed.
FROZEN_PE_SEED = 42


def _independent(args: argparse.Namespace) -> int:
    """Removal, survival and precision on a corpus nobody here wrote, beside plain Presidio."""
    from pii_independent import Removal, print_removal_table, real_text_set

    if args.corpus == "presidio-evaluator":
        from pii_independent import presidio_evaluator_set

        examples, digest, dropped = presidio_evaluator_set(args.n, args.seed)
        frozen = args.seed == FROZEN_PE_SEED
        print(
            f"corpus presidio-evaluator 0.3.2: {len(examples)} sentences (seed {args.seed}"
            f"{', the frozen test split' if frozen else ', a tuning split'}), texts sha256 "
            f"{digest}; types not scored: {dict(dropped)}"
        )
    elif args.corpus == "faker-addresses":
        from pii_independent import faker_address_set

        examples, digest, locales = faker_address_set(args.n, args.seed)
        frozen = False
        print(
            f"corpus faker-addresses: {len(examples)} addresses in {len(locales)} layouts "
            f"(seed {args.seed}, a tuning screen), texts sha256 {digest}"
        )
    else:
        examples, digest, registers = real_text_set(args.split, args.register)
        if not examples:
            raise SystemExit(f"no {args.split} records of register {args.register!r}")
        frozen = args.split != "dev"
        print(
            f"corpus real-text ({args.split} split): {len(examples)} records, texts sha256 "
            f"{digest}; registers {dict(registers)}"
        )
    if args.examples and frozen:
        raise SystemExit("--examples reads misses: only on a tuning split (never the test split)")
    texts = [ex.text for ex in examples]
    conf_path = Path(str(resources.files("privsynth.server") / "conf" / "nlp.yaml"))
    conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))
    systems: dict[str, Callable[[], Callable[[list[str]], list[list[Pred]]]]] = {
        "plain Presidio": lambda: _plain_presidio(conf),
        "privsynth": _privsynth,
    }
    if args.only == "privsynth":
        del systems["plain Presidio"]
    elif args.only == "presidio":
        del systems["privsynth"]
    tallies: dict[str, Removal] = {}
    by_register: dict[str, dict[str, Removal]] = defaultdict(dict)
    timings = []
    for name, factory in systems.items():
        t0 = time.perf_counter()
        run = factory()
        t1 = time.perf_counter()
        preds = run(texts)
        t2 = time.perf_counter()
        timings.append(
            f"{name}: load {t1 - t0:.1f} s, analyze {1000 * (t2 - t1) / len(texts):.1f} ms/text"
        )
        tallies[name] = Removal()
        for ex, ps in zip(examples, preds, strict=True):
            resolved = resolve(ps)
            tallies[name].add(ex, resolved)
            by_register[ex.domain].setdefault(name, Removal()).add(ex, resolved)
    precision = args.corpus == "real-text"
    print(
        "chars: gold characters removed; spans: gold spans >= half removed; surv: gold values "
        "still verbatim in the output"
        + ("; prec: predicted characters inside gold spans" if precision else "")
    )
    print_removal_table("All records", tallies, precision)
    if args.corpus == "faker-addresses":
        print_street_by_layout(by_register)
    elif len(by_register) > 1:
        for register, t in sorted(by_register.items()):
            print_removal_table(f"register {register}", t, precision)
    print()
    for line in timings:
        print(line)
    if args.examples:
        t = tallies.get("privsynth") or next(iter(tallies.values()))
        print_examples(t, args.examples, limit=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
