"""Delete what ``prune.txt`` lists from a site-packages directory (the image's builder stage).

    python requirements/prune.py /opt/venv/lib/python3.11/site-packages

:func:`pruned` is also what ``tests/deploy/test_image_size.py`` leaves out of the size it
measures, so the test and the image agree on what the image carries.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

LIST = Path(__file__).resolve().parent / "prune.txt"


def patterns() -> list[str]:
    """The globs of ``prune.txt`` (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in LIST.read_text().splitlines())
    return [line for line in lines if line]


def pruned(site: Path) -> list[Path]:
    """The directories under ``site`` the globs match (each at most once, outermost only)."""
    found = sorted({p for pattern in patterns() for p in site.glob(pattern) if p.is_dir()})
    return [p for p in found if not any(q in p.parents for q in found)]


def main() -> int:
    """Remove the matched directories; prints how many bytes went."""
    site = Path(sys.argv[1])
    total = 0
    for directory in pruned(site):
        total += sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
        shutil.rmtree(directory)
    print(f"pruned {total / 1e6:.0f} MB from {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
