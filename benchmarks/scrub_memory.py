"""Scrub worker memory and latency under large records (issue 12).

Scrubs N records of about 64 KB (public fortunes with synthetic PII mixed in) through
:class:`~privsynth.server.scrubbing.pipeline.ParallelScrubber` and prints each worker's RSS before
and after (current and peak), the throughput, and the latency of a 30-character scrub sent
while the large records are being scrubbed.

    .venv/bin/python benchmarks/scrub_memory.py --records 350 --workers 2
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from importlib import resources
from pathlib import Path

from privsynth.server.scrubbing.pipeline import ParallelScrubber

_PII = [
    "Write to Zebulon Quagmire at zebulon.quagmire@example.org or call (415) 555-0134.",
    "Ottoline Farquharson paid with 4111 1111 1111 1111 from 192.0.2.7 on March 3, 2021.",
    "SSN 536-22-8726 belongs to the account 12345678 at 1 Main Street, Springfield.",
]


def big_record(i: int, size: int) -> str:
    ref = resources.files("privsynth.server") / "assets" / "demo_fortunes.jsonl"
    fortunes = [json.loads(line)["text"] for line in ref.read_text(encoding="utf-8").splitlines()]
    parts: list[str] = []
    n = 0
    j = i * 37
    while n < size:
        piece = fortunes[j % len(fortunes)] if j % 5 else _PII[j % len(_PII)]
        parts.append(piece)
        n += len(piece.encode("utf-8")) + 1
        j += 1
    return " ".join(parts).encode("utf-8")[: size - 8].decode("utf-8", "ignore")


def rss_kb(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of ``pid`` in KiB."""
    cur = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return cur, peak


def worker_pids(scrubber: ParallelScrubber) -> list[int]:
    return scrubber.worker_pids()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=350)
    ap.add_argument("--size", type=int, default=64 * 1024)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    texts = [big_record(i, args.size) for i in range(args.records)]
    with ParallelScrubber(workers=args.workers, residual_check=True) as ps:
        pids = worker_pids(ps)
        before = {pid: rss_kb(pid) for pid in pids}
        small_latency: list[float] = []
        done = threading.Event()

        def small_calls() -> None:
            time.sleep(5)
            while not done.is_set():
                t0 = time.perf_counter()
                ps.scrub_batch(["Call Ann Example at 555-0100."], interactive=True)
                small_latency.append(time.perf_counter() - t0)
                time.sleep(2)

        t = threading.Thread(target=small_calls, daemon=True)
        t.start()
        t0 = time.perf_counter()
        n = sum(1 for _ in ps.scrub_iter(texts))
        elapsed = time.perf_counter() - t0
        done.set()
        t.join(120)
        pids_after = worker_pids(ps)
        after = {pid: rss_kb(pid) for pid in pids_after}
    mb = 1024
    print(
        f"records: {n} x {args.size} B, {elapsed:.1f} s, {n * args.size / elapsed / 1e3:.0f} kB/s"
    )
    for pid, (cur, _) in before.items():
        print(f"worker {pid} before: RSS {cur / mb:.0f} MiB")
    for pid, (cur, peak) in after.items():
        print(f"worker {pid} after: RSS {cur / mb:.0f} MiB, peak {peak / mb:.0f} MiB")
    if small_latency:
        lat = sorted(small_latency)
        print(
            f"30-char scrub during the upload: n={len(lat)} max {lat[-1]:.2f} s, "
            f"median {lat[len(lat) // 2]:.2f} s"
        )


if __name__ == "__main__":
    main()
