"""Turn the hand-read label tables of the real-text PII set into character spans (issue 13).

The labeller reads each record and writes, in ``benchmarks/data/pii_real/labels/<register>.txt``,
what they read: one ``[record id]`` line per record (also for records with no personal data, so
that every record is shown to have been read), then one ``TYPE: value`` line per distinct value.
This script finds every occurrence of each value in the record's text, bounded by non-word
characters on both sides, and writes them as the record's ``spans`` (guideline: every
occurrence is labelled). ``TYPE@i,j: value`` keeps only the i-th, j-th occurrence (from 0) for the
rare value that also occurs where it is not personal data; ``\\n`` in a value stands for a line
break (an address or a name wrapped over two lines). No detector is involved: the only input is
the table the labeller wrote.

Checks that stop the run: a value that does not occur, an id with no table entry or a table entry
with no record, two spans that overlap without one containing the other, a type the guideline
does not list. A span inside a longer one (a name inside an e-mail address) is dropped, as the
guideline says. ``--review`` prints occurrences worth a second look: a value found more than
once, or touching ``@ . / - _`` (a name inside a host or a path).

    python benchmarks/pii_real_label.py            # rewrite the spans of every labelled register
    python benchmarks/pii_real_label.py --review   # also list occurrences to re-read
    python benchmarks/pii_real_label.py --show ID  # print one record with its spans bracketed
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "pii_real"
TYPES = frozenset(
    {
        "PERSON",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "STREET_ADDRESS",
        "POSTCODE",
        "LOCATION",
        "DATE_TIME",
        "IP_ADDRESS",
        "URL",
        "CREDIT_CARD",
        "IBAN_CODE",
        "US_SSN",
    }
)
Span = tuple[int, int, str]  # start, end (exclusive), type; written to JSON as a list
ENTRY = re.compile(r"^([A-Z_]+)(?:@([0-9,]+))?: (.+)$")


@dataclass(frozen=True)
class Label:
    """One line of a table: a value as read, its type, and optionally which occurrences."""

    kind: str
    value: str
    only: tuple[int, ...] | None


def read_table(path: Path) -> dict[str, list[Label]]:
    """Record id -> its labels, from a table file; raises ``ValueError`` on a malformed line."""
    table: dict[str, list[Label]] = {}
    current: list[Label] | None = None
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            rid = line[1:-1]
            if rid in table:
                raise ValueError(f"{path.name}:{n}: {rid} listed twice")
            current = table[rid] = []
            continue
        found = ENTRY.match(line)
        if current is None or not found or found.group(1) not in TYPES:
            raise ValueError(f"{path.name}:{n}: not '[id]' or 'TYPE[@i,j]: value'")
        only = tuple(int(i) for i in found.group(2).split(",")) if found.group(2) else None
        value = found.group(3).replace("\\n", "\n")  # a value that runs over a line break
        current.append(Label(found.group(1), value, only))
    return table


def occurrences(text: str, value: str) -> list[int]:
    """Start offsets of ``value`` in ``text`` not preceded or followed by a word character."""
    pattern = re.compile(rf"(?<!\w){re.escape(value)}(?!\w)")
    return [m.start() for m in pattern.finditer(text)]


def spans_for(rid: str, text: str, labels: list[Label]) -> list[Span]:
    """Every labelled occurrence as ``[start, end, type]``, contained spans dropped, sorted."""
    found: dict[tuple[int, int], str] = {}
    for label in labels:
        starts = occurrences(text, label.value)
        if not starts:
            raise ValueError(f"{rid}: {label.kind} value not found: {label.value!r}")
        if label.only is not None:
            if max(label.only) >= len(starts):
                raise ValueError(f"{rid}: {label.value!r} occurs {len(starts)} times")
            starts = [starts[i] for i in label.only]
        for start in starts:
            key = (start, start + len(label.value))
            if found.get(key, label.kind) != label.kind:
                raise ValueError(f"{rid}: {label.value!r} labelled with two types")
            found[key] = label.kind
    keys = sorted(found, key=lambda k: (k[0], -k[1]))
    kept: list[tuple[int, int]] = []
    for start, end in keys:
        if kept and start < kept[-1][1]:
            if end <= kept[-1][1]:
                continue  # inside a longer span: part of it (a name inside an address)
            raise ValueError(f"{rid}: spans overlap at {start}: {text[start:end]!r}")
        kept.append((start, end))
    return [(start, end, found[(start, end)]) for start, end in kept]


def review(rid: str, text: str, labels: list[Label]) -> list[str]:
    """Occurrences worth re-reading: repeated values and values touching host or path signs."""
    notes: list[str] = []
    for label in labels:
        starts = occurrences(text, label.value)
        for start in starts:
            end = start + len(label.value)
            before = text[start - 1] if start else ""
            after = text[end] if end < len(text) else ""
            touches = any(c and c in "@./-_" for c in (before, after))
            if len(starts) > 1 or touches:
                context = text[max(0, start - 25) : end + 25].replace("\n", "⏎")
                notes.append(f"{rid}: {label.kind} x{len(starts)} …{context}…")
    return notes


def bracketed(text: str, spans: list[Span]) -> str:
    """The text with each span shown as ``[[TYPE:value]]``, for reading the labels back."""
    out: list[str] = []
    at = 0
    for start, end, kind in spans:
        out.append(text[at:start] + f"[[{kind}:{text[start:end]}]]")
        at = end
    return "".join(out) + text[at:]


def label_register(register: str, *, show_review: bool) -> dict[str, int]:
    """Rewrite one register's spans from its table; returns the count of spans per type."""
    path = DATA / f"{register}.jsonl"
    table = read_table(DATA / "labels" / f"{register}.txt")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    ids = {r["id"] for r in records}
    if missing := sorted(ids - table.keys()):
        raise ValueError(f"{register}: {len(missing)} records not labelled yet, first {missing[0]}")
    if extra := sorted(table.keys() - ids):
        raise ValueError(f"{register}: table entries without a record: {extra}")
    counts: dict[str, int] = {}
    for rec in records:
        rec["spans"] = spans_for(rec["id"], rec["text"], table[rec["id"]])
        for _, _, kind in rec["spans"]:
            counts[kind] = counts.get(kind, 0) + 1
        if show_review:
            for note in review(rec["id"], rec["text"], table[rec["id"]]):
                print(note)
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return counts


def main() -> None:
    """Label every register that has a table, or show one record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--review", action="store_true", help="list occurrences to re-read")
    parser.add_argument("--show", metavar="ID", help="print one record with its spans")
    args = parser.parse_args()
    if args.show:
        register = args.show.split(":")[0]
        for line in (DATA / f"{register}.jsonl").read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec["id"] == args.show:
                print(bracketed(rec["text"], rec["spans"]))
        return
    for table in sorted((DATA / "labels").glob("*.txt")):
        counts = label_register(table.stem, show_review=args.review)
        print(f"{table.stem}: {sum(counts.values())} spans {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
