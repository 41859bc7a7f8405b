"""First names and surnames of 105 countries, shipped as a small asset, for the name recognizers.

Faker's name lists (about 21,000 first names and 21,000 surnames) were the only lexicon, and on
text nobody here wrote most names fell outside them ("Tuomo", "Bibulat Sultygov", "Thilda").
``names-dataset`` (MIT; first and last names of 105 countries with a popularity rank per
country) covers them, but loading it takes 20 s and 1.9 GB, once per scrub worker. So the
asset is derived from it once, by :func:`build` (``python -m
privsynth.server.scrubbing.name_lexicon --build``, needs the dev extra), and committed:

* ``first.txt.gz`` / ``last.txt.gz``: names ranked in the top :data:`TOP_RANK` of at least
  one country, case-folded, one per line. Words that are common in English (a ``wordfreq``
  Zipf frequency of :data:`COMMON_ZIPF` or more: "will", "grace", "jan") are left out of the
  first names, where a capitalised common word at a sentence start would otherwise open a
  name; they stay among surnames, where the first name already is evidence ("Michael
  Brown").
* ``single.txt.gz``: first names that may stand alone as a PERSON ("Teresa is ...",
  "Calvin:"): ranked in the top :data:`SINGLE_RANK` of some country and rarer in English
  than :data:`SINGLE_ZIPF`. The recognizer still asks spaCy for a proper noun.

Loading the three files takes about half a second and ~60 MB per process.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["NameLexicon", "build", "load"]

#: A name counts when it ranks this high in at least one of names-dataset's countries.
TOP_RANK = 5000
#: First names this common in English (Zipf scale) are left out of the first-name list.
COMMON_ZIPF = 4.3
#: Stand-alone first names: this high in some country, and rarer in English than SINGLE_ZIPF.
SINGLE_RANK = 2000
SINGLE_ZIPF = 3.9

_FILES = ("first", "last", "single")


@dataclass(frozen=True)
class NameLexicon:
    """Case-folded name words: ``first`` and ``last`` pair up, ``single`` may stand alone."""

    first: frozenset[str]
    last: frozenset[str]
    single: frozenset[str]


def _asset_dir() -> Path:
    return Path(str(resources.files("privsynth.server") / "assets" / "names"))


@lru_cache(maxsize=1)
def load() -> NameLexicon:
    """The committed lexicon (cached per process); empty sets if the asset is missing."""
    words: dict[str, frozenset[str]] = {}
    for name in _FILES:
        path = _asset_dir() / f"{name}.txt.gz"
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                words[name] = frozenset(line.rstrip("\n") for line in fh if line.strip())
        except FileNotFoundError:
            words[name] = frozenset()
    return NameLexicon(first=words["first"], last=words["last"], single=words["single"])


def _words_of(name: str) -> list[str]:
    return [w for w in re.split(r"[ \-]", name.casefold()) if len(w) > 1 and w.isalpha()]


def build(out_dir: Path) -> dict[str, int]:  # pragma: no cover - a maintainer's tool
    """Derive the asset from names-dataset and wordfreq (dev extra); returns the counts."""
    import importlib
    import pickle

    # The lexicon extra; imported by name so that the type check needs neither installed.
    names_dataset = importlib.import_module("names_dataset")
    zipf_frequency = importlib.import_module("wordfreq").zipf_frequency

    src = Path(str(names_dataset.__file__)).parent / "v3"
    tables = {}
    for kind in ("first", "last"):
        with gzip.open(src / f"{kind}_names.pkl.gz") as fh:
            tables[kind] = pickle.load(fh)  # noqa: S301 - the installed package's own data

    def best_rank(entry: dict[str, dict[str, int]]) -> int | None:
        ranks = entry.get("rank") or {}
        return min(ranks.values()) if ranks else None

    first: set[str] = set()
    last: set[str] = set()
    single: set[str] = set()
    for kind, table in tables.items():
        for name, entry in table.items():
            rank = best_rank(entry)
            if rank is None or rank > TOP_RANK:
                continue
            for word in _words_of(name):
                zipf = zipf_frequency(word, "en")
                if kind == "last":
                    last.add(word)
                    continue
                if zipf < COMMON_ZIPF:
                    first.add(word)
                if rank <= SINGLE_RANK and zipf < SINGLE_ZIPF and len(word) > 2:
                    single.add(word)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, words in (("first", first), ("last", last), ("single", single)):
        # mtime=0: the same inputs give the same bytes.
        with (
            open(out_dir / f"{name}.txt.gz", "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        ):
            gz.write("".join(f"{w}\n" for w in sorted(words)).encode("utf-8"))
        counts[name] = len(words)
    return counts


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser(description="Rebuild the name lexicon asset.")
    ap.add_argument("--build", action="store_true", required=True)
    ap.add_argument("--out", type=Path, default=_asset_dir())
    print(build(ap.parse_args().out))
