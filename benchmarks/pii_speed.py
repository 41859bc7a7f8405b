"""Measure scrubbing speed and memory: privsynth's parallel scrubber versus a plain Presidio loop.

One run, one corpus (support-ticket-like texts with PII from ``pii_eval_data.py``), three
systems:

* ``plain loop``: ``AnalyzerEngine.analyze`` + ``AnonymizerEngine.anonymize`` once per
  document, Presidio's default recognizers on the full spaCy pipeline named in
  ``server/conf/nlp.yaml`` (the only change: the offline e-mail recognizer, as in
  ``pii_quality.py``, since the stock one would fetch the public-suffix list).
* ``privsynth 1 proc``: ``Scrubber.scrub_batch`` (batched ``nlp.pipe``, parser excluded, all of
  privsynth's recognizers), one process.
* ``privsynth N workers``: ``ParallelScrubber`` (the whole pipeline in N processes), with the
  residual check on, as ``scrub_file`` runs it.

``left`` counts gold PII values that still appear verbatim in the output: a leak measure that
needs no alignment. Docs/s exclude start-up (model loading and a 20-document warm-up,
printed as ``load s``). ``CPU ms/doc`` is CPU time per document summed over the processes
(parent and workers, from ``/proc``): on a shared machine docs/s depend on what else runs,
CPU per document much less, so with N idle cores the parallel rate is about
N * 1000 / (CPU ms/doc).

Memory: a child process streams the corpus repeated 1x and 10x through
``ParallelScrubber.scrub_iter`` (the 10x stream is a generator, never a list) and reports peak
RSS (``VmHWM`` from ``/proc``) of itself and of each worker; the total is their sum, an upper
bound because the peaks need not coincide.

    .venv/bin/python benchmarks/pii_speed.py                 # ~3 min on 2 idle cores
    .venv/bin/python benchmarks/pii_speed.py --docs 600 --mem-docs 200   # quick look

The CPU is shared on the machines this runs on: the script prints the 1-minute load average
before and after, and a load above the core count means every figure is pessimistic.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_eval_data import build_eval_set

SEED = 20240603


def _corpus(n: int) -> tuple[list[str], list[list[str]]]:
    examples = build_eval_set(n, SEED)
    texts = [ex.text for ex in examples]
    gold = [[ex.text[s.start : s.end] for s in ex.spans] for ex in examples]
    return texts, gold


def _left(outputs: Sequence[str], gold: Sequence[Sequence[str]]) -> int:
    return sum(1 for out, values in zip(outputs, gold, strict=True) for v in values if v in out)


def _plain_engines() -> tuple[Any, Any]:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine
    from privsynth.server.scrubbing.scrubber import _offline_email_recognizer

    conf_path = resources.files("privsynth.server") / "conf" / "nlp.yaml"
    conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))
    nlp_engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    analyzer.registry.remove_recognizer("EmailRecognizer")
    analyzer.registry.add_recognizer(_offline_email_recognizer())
    return analyzer, AnonymizerEngine()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def memory_child(docs: int, repeat: int, workers: int) -> None:
    """Stream the corpus ``repeat`` times through ParallelScrubber; print peak RSS as JSON."""
    from privsynth.server.scrubbing.pipeline import ParallelScrubber

    texts, _ = _corpus(docs)

    def stream() -> Iterator[str]:
        for _ in range(repeat):
            yield from texts

    with ParallelScrubber(workers=workers, residual_check=True, reserved=0) as ps:
        n = sum(1 for _ in ps.scrub_iter(stream()))
        pool = ps._pool
        assert pool is not None
        worker_kib = [_hwm_kib(p) for p in pool.pids()]
    print(json.dumps({"docs": n, "self_kib": _hwm_kib(os.getpid()), "worker_kib": worker_kib}))


def _memory(docs: int, repeat: int, workers: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", str(repeat), "--mem-docs", str(docs)]
    cmd += ["--workers", str(workers)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000, help="corpus size for the speed runs")
    ap.add_argument("--mem-docs", type=int, default=500, help="1x corpus size for memory")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    if args.memory_child:
        memory_child(args.mem_docs, args.memory_child, args.workers)
        return 0

    from privsynth.server.scrubbing.pipeline import ParallelScrubber
    from privsynth.server.scrubbing.scrubber import Scrubber

    texts, gold = _corpus(args.docs)
    n_gold = sum(len(g) for g in gold)
    print(
        f"corpus: {len(texts)} docs, {sum(map(len, texts)) / len(texts):.0f} chars/doc, "
        f"{n_gold} gold PII values; {os.cpu_count()} CPUs, load avg before: {_load()}"
    )
    rows: list[tuple[str, float, float, float, int]] = []
    warm = texts[:20]  # every system scrubs these first, untimed: lazy loads are start-up

    t0 = time.perf_counter()
    analyzer, anonymizer = _plain_engines()
    for text in warm:
        anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(text, language="en"))
    t1, c1 = time.perf_counter(), time.process_time()
    plain_out = []
    for text in texts:
        results = analyzer.analyze(text=text, language="en", score_threshold=0.35)
        plain_out.append(anonymizer.anonymize(text=text, analyzer_results=results).text)
    t2, c2 = time.perf_counter(), time.process_time()
    label = "plain loop (analyze+anonymize/doc)"
    rows.append((label, t1 - t0, t2 - t1, c2 - c1, _left(plain_out, gold)))
    del analyzer, anonymizer

    t0 = time.perf_counter()
    scrubber = Scrubber()
    scrubber.load()
    scrubber.scrub_batch(warm)
    t1, c1 = time.perf_counter(), time.process_time()
    one = [r.text for r in scrubber.scrub_batch(texts)]
    t2, c2 = time.perf_counter(), time.process_time()
    rows.append(("privsynth 1 process, batched", t1 - t0, t2 - t1, c2 - c1, _left(one, gold)))
    del scrubber

    t0 = time.perf_counter()
    with ParallelScrubber(workers=args.workers, residual_check=True, reserved=0) as ps:
        pool = ps._pool
        assert pool is not None
        pids = [os.getpid(), *pool.pids()]
        t1, c1 = time.perf_counter(), sum(map(_cpu_s, pids))
        results = list(ps.scrub_iter(texts))
        t2, c2 = time.perf_counter(), sum(map(_cpu_s, pids))
    residual = sum(sum(r.residual_counts.values()) for r in results)
    label = f"privsynth {args.workers} workers + residual check"
    rows.append((label, t1 - t0, t2 - t1, c2 - c1, _left([r.text for r in results], gold)))

    base = len(texts) / rows[0][2]
    print(f"{'system':42} {'load s':>7} {'docs/s':>8} {'ratio':>6} {'CPU ms/doc':>10} {'left':>6}")
    for name, load_s, run_s, cpu_s, left in rows:
        rate = len(texts) / run_s
        cpu_ms = 1000 * cpu_s / len(texts)
        print(f"{name:42} {load_s:7.1f} {rate:8.1f} {rate / base:6.2f} {cpu_ms:10.2f} {left:6d}")
    print(f"residual structured identifiers after privsynth: {residual}")
    print(f"load avg after speed runs: {_load()}")

    if not args.skip_memory:
        print(f"\npeak RSS, ParallelScrubber({args.workers}) streaming the corpus (MiB)")
        print(f"{'size':>5} {'docs':>7} {'parent':>7} {'workers':>15} {'total':>7}")
        totals = []
        for repeat in (1, 10):
            m = _memory(args.mem_docs, repeat, args.workers)
            total = (m["self_kib"] + sum(m["worker_kib"])) / 1024
            totals.append(total)
            workers = "+".join(f"{k / 1024:.0f}" for k in m["worker_kib"])
            parent = m["self_kib"] / 1024
            print(f"{repeat:4d}x {m['docs']:7d} {parent:7.0f} {workers:>15} {total:7.0f}")
        print(f"10x / 1x total peak: {totals[1] / totals[0]:.3f}; load avg after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
