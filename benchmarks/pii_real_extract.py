"""Sample the Debian registers of the real-text PII set from text on this machine (issue 13).

The real-text set measures the scrubber on text nobody on this team wrote, so its records must be
chosen without looking at what any scrubber does with them. This script picks them by seeded random
sampling alone and writes them with empty ``spans``; the spans are then written by reading each
record (``pii_real_label.py`` holds that reading as data). Rules, from
``docs/pii-labelling-guideline.md`` and the issue:

* Units. ``debian-copyright``: one stanza (blank-line-separated paragraph) of
  ``/usr/share/doc/<pkg>/copyright``, machine-readable (DEP-5) or free-form.
  ``debian-changelog``: one entry of ``/usr/share/doc/<pkg>/changelog.Debian.gz``, from its
  header line (``pkg (version) dist; urgency=...``) to its `` -- Name <mail>  date`` sign-off.
  ``authors``: a section of an AUTHORS, THANKS, CREDITS, CONTRIBUTORS or MAINTAINERS file under
  ``/usr/share/doc`` or in a wheel installed in the venv (consecutive paragraphs packed up to the
  size limit, because these files are lists without headed sections), or the header block (the
  lines before the long description) of a wheel's ``*.dist-info/METADATA``, where the author and
  maintainer fields are.
* A unit longer than ``MAX_CHARS`` is cut at a line boundary and ``cut`` is recorded; text is
  otherwise kept as found (files that are not valid UTF-8 are skipped, never re-encoded).
* Sampling is grouped by package (Debian *source* package, so ``libfoo1`` and ``libfoo-dev``
  count as one; one wheel distribution): packages are put in a seeded random order, and from each
  package in that order up to ``PER_PACKAGE`` of its distinct units are drawn at random, until
  the register's target is reached. Identical unit texts are kept once.

The package set (Debian packages and venv wheels installed when the set was drawn) is frozen in
``data/pii_real/packages.txt``, because others install packages on these machines while one
works, so the draw repeats here; each record names its package version. A different machine gives
a different but equally drawn set. ``python benchmarks/pii_real_extract.py --out DIR`` (re)writes
the unlabelled files; ``--freeze`` first records the packages installed now.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SEED = 13
MAX_CHARS = 1500
PER_PACKAGE = 2
DOC = Path("/usr/share/doc")
PACKAGES = Path(__file__).resolve().parent / "data" / "pii_real" / "packages.txt"
SITE_PACKAGES = Path(__file__).resolve().parents[1] / ".venv/lib/python3.11/site-packages"
TARGETS = {"debian-copyright": 100, "debian-changelog": 100}
AUTHORS_FILES_TARGET = 50  # sections of AUTHORS-like files, Debian and wheels together
METADATA_TARGET = 20  # wheel METADATA header blocks, one per distribution
LOCALES = Path("/usr/share/i18n/locales")
LOCALES_TARGET = 1000  # every address value (sampling group), PER_PACKAGE files each
LOCALE_ADDRESS = re.compile(r'^address\s+"([^"]*)"', re.MULTILINE)
LOCALE_END = "END LC_IDENTIFICATION"
LOCALE_LICENCE = (
    "glibc locale data (Debian package locales): its header says the Free Software Foundation "
    "does not claim any copyright interest in the locale data; /usr/share/doc/locales/copyright"
)
AUTHORS_NAMES = re.compile(
    r"^(AUTHORS|THANKS|CREDITS|CONTRIBUTORS|MAINTAINERS)([._-].*)?$", re.IGNORECASE
)
# dpkg's own changelog grammar (Dpkg::Changelog::Entry::Debian): header and trailer lines.
CHANGELOG_HEADER = re.compile(r"^\w[-+0-9a-z.]* \([^()]+\)(?:\s+[-+0-9a-z.]+)+;", re.IGNORECASE)
CHANGELOG_TRAILER = re.compile(r"^ -- .*<.*>  ?\S")


@dataclass(frozen=True)
class Unit:
    """One candidate record before sampling: where it is from, and its (possibly cut) text."""

    group: str  # the sampling group: a Debian source package or a wheel distribution
    origin: str
    licence: str
    text: str
    cut: bool
    key: str = ""  # a record id's own part where the register names records itself


def read_text(path: Path) -> str | None:
    """The file's text, un-gzipped; ``None`` when it is not UTF-8 (kept as found or not at all)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def cut_lines(text: str) -> tuple[str, bool]:
    """The longest run of whole leading lines within ``MAX_CHARS``, and whether anything was cut."""
    if len(text) <= MAX_CHARS:
        return text, False
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > MAX_CHARS:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept:  # a single line longer than the limit: no line boundary to cut at
        return text[:MAX_CHARS], True
    return "\n".join(kept).rstrip("\n"), True


def paragraphs(text: str) -> list[str]:
    """Blank-line-separated paragraphs (DEP-5 stanzas), each without its surrounding newlines."""
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def packed_sections(text: str) -> list[tuple[str, bool]]:
    """Consecutive paragraphs packed up to ``MAX_CHARS``; a longer paragraph split at lines.

    AUTHORS and THANKS files are mostly long lists with few headings, so "a section" is a window
    of whole paragraphs; the windows cover the file once, without overlap.
    """
    sections: list[tuple[str, bool]] = []
    current, current_cut = "", False  # the window being packed; whether it holds a split part
    for whole in paragraphs(text):
        rest = whole
        while len(rest) > MAX_CHARS:
            if current:
                sections.append((current, current_cut))
                current, current_cut = "", False
            head, _ = cut_lines(rest)
            sections.append((head, True))
            rest = rest[len(head) :].lstrip("\n")
        if current and len(current) + 2 + len(rest) > MAX_CHARS:
            sections.append((current, current_cut))
            current, current_cut = "", False
        current = f"{current}\n\n{rest}" if current else rest
        current_cut = current_cut or rest != whole
    if current:
        sections.append((current, current_cut))
    return sections


def changelog_entries(text: str) -> list[str]:
    """Entries from a header line through the next sign-off line; text outside them is dropped."""
    entries: list[str] = []
    start: int | None = None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if CHANGELOG_HEADER.match(line):
            start = i
        elif start is not None and CHANGELOG_TRAILER.match(line):
            entries.append("\n".join(lines[start : i + 1]))
            start = None
    return entries


def dpkg_owners(paths: list[Path]) -> dict[Path, str]:
    """The binary package owning each path (``dpkg-query -S``); unowned paths are left out."""
    owners: dict[Path, str] = {}
    for i in range(0, len(paths), 200):
        chunk = paths[i : i + 200]
        out = subprocess.run(
            ["dpkg-query", "-S", *map(str, chunk)], capture_output=True, text=True, check=False
        ).stdout
        for line in out.splitlines():
            if line.startswith("diversion "):
                continue
            pkgs, _, path = line.rpartition(": ")
            owners[Path(path)] = pkgs.split(",")[0].split(":")[0].strip()
    return owners


def dpkg_versions() -> dict[str, tuple[str, str]]:
    """Installed binary package -> (version, source package), as ``dpkg-query`` lists them now."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Version}\t${source:Package}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        pkg, version, source = line.split("\t")
        table[pkg] = (version, source or pkg)
    return table


def wheel_name_version(metadata: str) -> tuple[str, str] | None:
    """A wheel's distribution name and version, from its METADATA."""
    name = re.search(r"^Name:[ \t]*(.+)$", metadata, re.MULTILINE)
    version = re.search(r"^Version:[ \t]*(.+)$", metadata, re.MULTILINE)
    if not name or not version:
        return None
    return name.group(1).strip(), version.group(1).strip()


def installed() -> dict[tuple[str, str], tuple[str, str]]:
    """(``debian`` or ``wheel``, name) -> (version, sampling group) of everything installed now."""
    table = {("debian", pkg): row for pkg, row in dpkg_versions().items()}
    for dist_info in sorted(SITE_PACKAGES.glob("*.dist-info")):
        meta = read_text(dist_info / "METADATA")
        found = wheel_name_version(meta) if meta is not None else None
        if found:
            table["wheel", found[0]] = (found[1], found[0])
    return table


def frozen() -> dict[tuple[str, str], tuple[str, str]]:
    """The package set the committed records were drawn from, where installed at that version.

    Other work on these machines installs Debian packages and wheels, and a new package changes
    the draw, so the set is frozen in ``PACKAGES`` (``--freeze`` rewrites it). Packages missing
    now or at another version are left out and counted on stderr: the draw may then differ from
    the committed records.
    """
    now = installed()
    table: dict[tuple[str, str], tuple[str, str]] = {}
    changed: list[str] = []
    for line in PACKAGES.read_text(encoding="utf-8").splitlines():
        kind, name, version, group = line.split("\t")
        if now.get((kind, name), ("", ""))[0] == version:
            table[kind, name] = (version, group)
        else:
            changed.append(name)
    if changed:
        print(
            f"warning: {len(changed)} frozen packages missing or changed ({', '.join(changed[:5])}"
            "...); the draw may differ from the committed records",
            file=sys.stderr,
        )
    return table


def freeze() -> None:
    """Write what is installed now to ``PACKAGES`` (kind, name, version, group; sorted)."""
    rows = sorted(installed().items())
    PACKAGES.write_text(
        "".join(f"{k}\t{n}\t{v}\t{g}\n" for (k, n), (v, g) in rows), encoding="utf-8"
    )


def dep5_licence(copyright_text: str, files: str) -> str | None:
    """The first line of ``License:`` in the DEP-5 stanza whose ``Files:`` is ``files``."""
    if not copyright_text.startswith("Format:"):
        return None
    for stanza in paragraphs(copyright_text):
        if re.search(rf"^Files:\s*{re.escape(files)}\s*$", stanza, re.MULTILINE):
            found = re.search(r"^License:[ \t]*(.+)$", stanza, re.MULTILINE)
            if found:
                return found.group(1).strip()
    return None


def debian_licence(doc_dir: Path, *, packaging: bool) -> str:
    """The licence the package's copyright file states for this kind of text, where it is easy.

    Copyright and changelog files are packaging (``Files: debian/*``); AUTHORS-like files are
    upstream's (``Files: *``). Free-form copyright files give just "as the package".
    """
    text = read_text(doc_dir / "copyright") if (doc_dir / "copyright").exists() else None
    order = ["debian/*", "*"] if packaging else ["*"]
    for files in order:
        found = dep5_licence(text or "", files)
        if found:
            return f"as the package: {found} (its copyright file, Files: {files})"
    return "as the package (free-form copyright file)"


def doc_dirs() -> list[Path]:
    """Package documentation directories, sorted; symlinks to another package's docs skipped."""
    return sorted(p for p in DOC.iterdir() if p.is_dir() and not p.is_symlink())


def debian_units(
    files: list[Path], register: str, packages: dict[tuple[str, str], tuple[str, str]]
) -> Iterator[Unit]:
    """Every unit of the given files of the frozen Debian packages, with version and licence."""
    owners = dpkg_owners(files)
    for path in files:
        pkg = owners.get(path)
        text = read_text(path)
        if pkg is None or ("debian", pkg) not in packages or text is None:
            continue
        version, source = packages["debian", pkg]
        where = f"Debian package {pkg} {version}, {path}"
        if register == "debian-copyright":
            licence = debian_licence(path.parent, packaging=True)
            for i, stanza in enumerate(paragraphs(text)):
                body, cut = cut_lines(stanza)
                yield Unit(source, f"{where}, stanza {i}", licence, body, cut)
        elif register == "debian-changelog":
            licence = debian_licence(path.parent, packaging=True)
            for i, entry in enumerate(changelog_entries(text)):
                body, cut = cut_lines(entry)
                yield Unit(source, f"{where}, entry {i}", licence, body, cut)
        else:
            licence = debian_licence(path.parent, packaging=False)
            for i, (body, cut) in enumerate(packed_sections(text)):
                yield Unit(source, f"{where}, section {i}", licence, body, cut)


def wheel_licence(metadata: str) -> str:
    """The licence a wheel's METADATA states (expression, field, or classifier)."""
    for pattern in (
        r"^License-Expression:[ \t]*(.+)$",
        r"^License:[ \t]*(.+)$",
        r"^Classifier: License :: (.+)$",
    ):
        found = re.search(pattern, metadata, re.MULTILINE)
        if found and found.group(1).strip() not in {"", "UNKNOWN"}:
            return f"as the wheel: {found.group(1).strip()[:80]} (its METADATA)"
    return "as the wheel (its METADATA states none)"


def wheel_units(
    packages: dict[tuple[str, str], tuple[str, str]], *, metadata: bool
) -> Iterator[Unit]:
    """AUTHORS-like files in the frozen wheels of the venv, or their METADATA header blocks."""
    for dist_info in sorted(SITE_PACKAGES.glob("*.dist-info")):
        meta = read_text(dist_info / "METADATA")
        found = wheel_name_version(meta) if meta is not None else None
        if meta is None or found is None or packages.get(("wheel", found[0]), ("",))[0] != found[1]:
            continue
        dist = f"{found[0]} {found[1]}"
        licence = wheel_licence(meta)
        if metadata:
            header = meta.split("\n\n", 1)[0]
            body, cut = cut_lines(header)
            where = f"PyPI wheel {dist}, {dist_info.name}/METADATA, header block"
            yield Unit(dist, where, licence, body, cut)
            continue
        for path in sorted(p for p in dist_info.rglob("*") if AUTHORS_NAMES.match(p.name)):
            text = read_text(path)
            if text is None:
                continue
            rel = path.relative_to(SITE_PACKAGES)
            for i, (body, cut) in enumerate(packed_sections(text)):
                yield Unit(dist, f"PyPI wheel {dist}, {rel}, section {i}", licence, body, cut)


def locale_units(packages: dict[tuple[str, str], tuple[str, str]]) -> Iterator[Unit]:
    """``glibc-locales``: a locale file's text up to ``END LC_IDENTIFICATION``, where the file's
    identification names a postal ``address`` (any non-empty value, in any layout or script).

    The unit is chosen by the presence of the field, never by what its address looks like, so
    the set is not biased towards layouts some pattern finds. The sampling group is the address
    value: one maintainer's address in 39 files counts once (``PER_PACKAGE`` files at most).
    """
    version = packages.get(("debian", "locales"), ("unknown", ""))[0]
    for path in sorted(LOCALES.iterdir()):
        text = read_text(path) if path.is_file() else None
        end = -1 if text is None else text.find(LOCALE_END)
        if text is None or end < 0:
            continue
        block = text[: end + len(LOCALE_END)]
        found = LOCALE_ADDRESS.search(block)
        if found is None or not found.group(1).strip():
            continue
        body, cut = cut_lines(block)
        yield Unit(
            " ".join(found.group(1).split()),
            f"Debian package locales {version}, {path}, up to {LOCALE_END}",
            LOCALE_LICENCE,
            body,
            cut,
            key=path.name,
        )


def locale_records(units: list[Unit]) -> list[dict[str, object]]:
    """Records of ``glibc-locales``, each id naming its locale file (the split hashes the id)."""
    return [
        {
            "id": f"glibc-locales:{unit.key}",
            "register": "glibc-locales",
            "source": {"origin": unit.origin, "licence": unit.licence, "cut": unit.cut},
            "text": unit.text,
            "spans": [],
        }
        for unit in units
    ]


def sample(units: Iterable[Unit], target: int, seed: str) -> list[Unit]:
    """Up to ``PER_PACKAGE`` distinct units from each package, packages in seeded random order.

    The order of packages is a seeded hash of each name, and the draw within a package is seeded
    by its name, so which records a package gives does not depend on what else is installed.
    Units are drawn at random within their package; identical texts (one file shipped by several
    binary packages, one licence stanza in many files) are kept once, where first met in sorted
    order, so the draw does not depend on which binary package shipped them.
    """
    groups: dict[str, list[Unit]] = {}
    seen: set[str] = set()
    for unit in units:
        if unit.text.strip() and unit.text not in seen:
            seen.add(unit.text)
            groups.setdefault(unit.group, []).append(unit)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    chosen: list[Unit] = []
    for group in order:
        pool = groups[group]
        rng = random.Random(f"{seed}:{group}")
        chosen.extend(rng.sample(pool, min(PER_PACKAGE, len(pool)))[: target - len(chosen)])
        if len(chosen) >= target:
            break
    return chosen


def records(register: str, units: list[Unit]) -> list[dict[str, object]]:
    """JSON records in the guideline's format, with empty spans and ids unique per register."""
    out: list[dict[str, object]] = []
    counts: dict[str, int] = {}
    for unit in units:
        key = re.sub(r"[^A-Za-z0-9.+-]", "-", unit.group.split(" ")[0])
        n = counts.get(key, 0)
        counts[key] = n + 1
        out.append(
            {
                "id": f"{register}:{key}:{n}",
                "register": register,
                "source": {"origin": unit.origin, "licence": unit.licence, "cut": unit.cut},
                "text": unit.text,
                "spans": [],
            }
        )
    return out


def build() -> dict[str, list[dict[str, object]]]:
    """The Debian registers' sampled records, unlabelled, from the frozen package set."""
    packages = frozen()
    dirs = doc_dirs()
    copyrights = [d / "copyright" for d in dirs if (d / "copyright").is_file()]
    changelogs = [d / "changelog.Debian.gz" for d in dirs if (d / "changelog.Debian.gz").is_file()]
    authors = sorted(p for d in dirs for p in d.iterdir() if AUTHORS_NAMES.match(p.name))
    out: dict[str, list[dict[str, object]]] = {}
    for register, files in (("debian-copyright", copyrights), ("debian-changelog", changelogs)):
        units = debian_units(files, register, packages)
        out[register] = records(register, sample(units, TARGETS[register], f"{SEED}:{register}"))
    author_units = [
        *debian_units(authors, "authors", packages),
        *wheel_units(packages, metadata=False),
    ]
    picked = sample(author_units, AUTHORS_FILES_TARGET, f"{SEED}:authors")
    picked += sample(wheel_units(packages, metadata=True), METADATA_TARGET, f"{SEED}:metadata")
    out["authors"] = records("authors", picked)
    locales = sample(locale_units(packages), LOCALES_TARGET, f"{SEED}:glibc-locales")
    out["glibc-locales"] = locale_records(locales)
    return out


def main() -> None:
    """Write ``<register>.jsonl`` files with empty spans into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the .jsonl files")
    parser.add_argument(
        "--freeze", action="store_true", help=f"first record the installed packages in {PACKAGES}"
    )
    args = parser.parse_args()
    if args.freeze:
        freeze()
    args.out.mkdir(parents=True, exist_ok=True)
    for register, recs in build().items():
        path = args.out / f"{register}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for rec in recs:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"{path}: {len(recs)} records")


if __name__ == "__main__":
    main()
