"""Load benchmark: N concurrent clients per method against a local server, health probed throughout.

Starts ``privsynth serve`` on a free loopback port with a fresh data directory, uploads 400
bundled fortunes, trains one ``tiny`` model (seconds), then for each method (Generate on that
model, ScrubText) and each client count runs the clients for a fixed time in a separate process
while this process sends a health ``Check`` every 20 ms. Every request loop stops by itself
(deadline per call, fixed duration per row); refused calls (RESOURCE_EXHAUSTED) are retried
after the server's RetryInfo delay, as a well-behaved client does.

Prints one row per (method, clients): throughput, p50/p99 latency of completed calls,
rejections, other errors, health-check p99 and failures, server RSS (process plus its scrub
workers) before and after the row, and ratios against the 1-client row of the same run.

Targets (issue 12) at 64 clients: health p99 < 100 ms with 0 failed checks, RSS after <= 1.2x
before.

    .venv/bin/python benchmarks/load.py                  # clients 1 16 64, 20 s per row
    .venv/bin/python benchmarks/load.py --clients 1 64 --duration 10 --methods scrub
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

sys.path.insert(0, str(Path(__file__).resolve().parent))

HEALTH_INTERVAL_S = 0.02
HEALTH_TIMEOUT_S = 1.0
CALL_TIMEOUT_S = 30.0
SCRUB_TEXTS = [
    "Call Maria Gonzalez at 415-555-0134 about invoice 2231.",
    "Ship to 742 Evergreen Terrace, Springfield; contact homer@example.com.",
    "My card 4111 1111 1111 1111 was charged twice on 3 March.",
    "Ask Dr. Chen in Boston whether the results arrived.",
    "No personal data in this sentence at all, just a fortune.",
]


# -- process helpers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry.name))
    return kids


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """RSS of ``pid`` alone and of it plus all its descendants, in MB."""
    own = _rss_kb(pid)
    total = own
    stack = _children(pid)
    while stack:
        child = stack.pop()
        total += _rss_kb(child)
        stack.extend(_children(child))
    return own / 1024, total / 1024


# -- the client worker (run in its own process) ------------------------------------------------


def _retry_delay(err: grpc.RpcError) -> float:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return float(info.retry_delay.ToMilliseconds()) / 1000
    return 1.0


def _client_loop(
    target: str, method: str, model: str, stop_at: float, seed: int, out: dict[str, Any]
) -> None:
    from privsynth.client.pb import (
        generation_pb2,
        generation_pb2_grpc,
        scrubbing_pb2,
        scrubbing_pb2_grpc,
    )

    rng = random.Random(seed)
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    with grpc.insecure_channel(target) as channel:
        gen = generation_pb2_grpc.GenerationStub(channel)
        scrub = scrubbing_pb2_grpc.ScrubbingStub(channel)
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            timeout = max(0.5, min(CALL_TIMEOUT_S, stop_at - time.monotonic() + 5))
            started = time.perf_counter()
            try:
                if method == "generate":
                    request = generation_pb2.GenerateRequest(
                        model=model, count=4, max_tokens=32, seed=seed * 100_000 + i
                    )
                    for _ in gen.Generate(request, timeout=timeout):
                        pass
                else:
                    scrub.ScrubText(
                        scrubbing_pb2.ScrubTextRequest(text=rng.choice(SCRUB_TEXTS)),
                        timeout=timeout,
                    )
                latencies.append(time.perf_counter() - started)
                codes["OK"] += 1
            except grpc.RpcError as err:
                code = err.code()  # type: ignore[attr-defined]
                codes[code.name] += 1
                if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    delay = _retry_delay(err) * rng.uniform(0.5, 1.5)
                    time.sleep(max(0.0, min(delay, stop_at - time.monotonic())))
    out["latencies"] = latencies
    out["codes"] = dict(codes)


def run_worker(target: str, method: str, model: str, clients: int, duration: float) -> None:
    """Run ``clients`` request loops for ``duration`` seconds; print one JSON line of results."""
    stop_at = time.monotonic() + duration
    results: list[dict[str, Any]] = [{} for _ in range(clients)]
    threads = [
        threading.Thread(
            target=_client_loop, args=(target, method, model, stop_at, i + 1, results[i])
        )
        for i in range(clients)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + CALL_TIMEOUT_S + 10)
    elapsed = time.monotonic() - started
    latencies = [x for r in results for x in r.get("latencies", [])]
    codes: Counter[str] = Counter()
    for r in results:
        codes.update(r.get("codes", {}))
    print(json.dumps({"latencies": latencies, "codes": dict(codes), "elapsed": elapsed}))


# -- the driver --------------------------------------------------------------------------------


class HealthProbe:
    """Sends a health Check every :data:`HEALTH_INTERVAL_S` until stopped."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # connect first
            except grpc.RpcError:
                self.failures += 1
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    resp = stub.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_S)
                    ok = resp.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    ok = False
                took = time.perf_counter() - started
                self.latencies.append(took)
                self.failures += 0 if ok else 1
                self._stop.wait(max(0.0, HEALTH_INTERVAL_S - took))

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(HEALTH_TIMEOUT_S + 5)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _prepare(target: str, preset: str, records: int) -> str:
    from corpus_loader import load_rows
    from privsynth.client import PrivsynthClient, RecordIn

    rows = load_rows()[:records]
    with PrivsynthClient(target, timeout=120, stream_timeout=1800) as c:
        c.wait_until_serving(timeout=300)
        ds = c.upload_dataset(
            [RecordIn(text=r["text"], label=r.get("label", "")) for r in rows],
            display_name="load-benchmark",
            epsilon_cap=10,
        )
        started = time.monotonic()
        job = c.create_training_job(ds.name, target_epsilon=8, epochs=1, preset=preset)
        state = ""
        for snapshot in c.watch_training_job(job.name):
            state = training_state_name(snapshot.state)
        if state != "SUCCEEDED":
            raise SystemExit(f"training ended {state}")
        print(f"trained {preset} on {len(rows)} records in {time.monotonic() - started:.0f} s")
        return str(job.model)


def training_state_name(state: int) -> str:
    from privsynth.client.pb import training_pb2

    return str(training_pb2.JobState.Name(state)).removeprefix("JOB_STATE_")


def _run_row(
    target: str, server_pid: int, method: str, model: str, clients: int, duration: float
) -> dict[str, Any]:
    rss_before = tree_rss_mb(server_pid)
    with HealthProbe(target) as probe:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                method,
                "--target",
                target,
                "--model",
                model,
                "--clients",
                str(clients),
                "--duration",
                str(duration),
            ],
            capture_output=True,
            text=True,
            timeout=duration + CALL_TIMEOUT_S + 60,
            check=True,
        )
    rss_after = tree_rss_mb(server_pid)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = result["codes"].get("OK", 0)
    rejected = result["codes"].get("RESOURCE_EXHAUSTED", 0)
    errors = sum(result["codes"].values()) - ok - rejected
    return {
        "method": method,
        "clients": clients,
        "throughput": ok / result["elapsed"],
        "p50_ms": _pct(result["latencies"], 50) * 1000,
        "p99_ms": _pct(result["latencies"], 99) * 1000,
        "rejected": rejected,
        "errors": errors,
        "error_codes": {k: v for k, v in result["codes"].items() if k not in ("OK",)},
        "health_checks": len(probe.latencies),
        "health_p99_ms": _pct(probe.latencies, 99) * 1000,
        "health_max_ms": max(probe.latencies, default=float("nan")) * 1000,
        "health_failed": probe.failures,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| method | clients | calls/s | p50 ms | p99 ms | rejected | other errors "
        "| health p99 ms (max) | health failed/checks | server RSS MB before → after "
        "(with scrub workers) | RSS ratio | calls/s × | p50 × | p99 × | health p99 × |"
    )
    sep = "|" + "---|" * 15
    lines = [head, sep]
    base: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["clients"] == 1:
            base[r["method"]] = r
        b = base.get(r["method"], r)

        def ratio(key: str, r: dict[str, Any] = r, b: dict[str, Any] = b) -> str:
            return f"{r[key] / b[key]:.2f}" if b[key] else "–"

        rss_ratio = r["rss_after_mb"][1] / r["rss_before_mb"][1]
        lines.append(
            f"| {r['method']} | {r['clients']} | {r['throughput']:.1f} | {r['p50_ms']:.0f} "
            f"| {r['p99_ms']:.0f} | {r['rejected']} | {r['errors']} "
            f"| {r['health_p99_ms']:.1f} ({r['health_max_ms']:.0f}) "
            f"| {r['health_failed']}/{r['health_checks']} "
            f"| {r['rss_before_mb'][0]:.0f} → {r['rss_after_mb'][0]:.0f} "
            f"({r['rss_before_mb'][1]:.0f} → {r['rss_after_mb'][1]:.0f}) "
            f"| {rss_ratio:.2f} | {ratio('throughput')} | {ratio('p50_ms')} | {ratio('p99_ms')} "
            f"| {ratio('health_p99_ms')} |"
        )
    return "\n".join(lines)


def main() -> None:
    from privsynth.client import PrivsynthClient

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per row")
    parser.add_argument(
        "--methods", nargs="+", choices=["generate", "scrub"], default=["generate", "scrub"]
    )
    parser.add_argument("--preset", default="tiny", help="model preset to train (tiny)")
    parser.add_argument("--records", type=int, default=400, help="records to train on")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="extra server settings, e.g. PRIVSYNTH_MAX_GENERATE_CALLS=64 to see it unbounded",
    )
    # internal: the client worker process
    parser.add_argument("--worker", choices=["generate", "scrub"], help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.target, args.worker, args.model, args.clients[0], args.duration)
        return

    clients = sorted(set(args.clients) | {1})  # the baseline is always measured
    port = _free_port()
    target = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="privsynth-load-") as data_dir:
        env = {
            **os.environ,
            "PRIVSYNTH_DATA_DIR": data_dir,
            "PRIVSYNTH_HOST": "127.0.0.1",
            "PRIVSYNTH_GRPC_PORT": str(port),
            "PRIVSYNTH_METRICS_PORT": "-1",
            "PRIVSYNTH_LOG_LEVEL": "WARNING",
            **dict(item.split("=", 1) for item in args.server_env),
        }
        serve = [str(Path(sys.executable).with_name("privsynth")), "serve"]
        server = subprocess.Popen(
            serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        rows: list[dict[str, Any]] = []
        try:
            with PrivsynthClient(target, timeout=60) as c:
                c.wait_until_serving(timeout=300)
            model = (
                _prepare(target, args.preset, args.records) if "generate" in args.methods else ""
            )
            print(
                f"server pid {server.pid}; cores {os.cpu_count()}; {args.duration:.0f} s per row; "
                f"extra settings {args.server_env or 'none'}"
            )
            for method in args.methods:
                # warm up (model into the cache, scrub workers' first batch)
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        method,
                        "--target",
                        target,
                        "--model",
                        model,
                        "--clients",
                        "1",
                        "--duration",
                        "2",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                )
                for n in clients:
                    row = _run_row(target, server.pid, method, model, n, args.duration)
                    rows.append(row)
                    print(
                        f"  {method} x{n}: {row['throughput']:.1f}/s p99 {row['p99_ms']:.0f} ms, "
                        f"rejected {row['rejected']}, health p99 {row['health_p99_ms']:.1f} ms "
                        f"failed {row['health_failed']}, codes {row['error_codes']}",
                        flush=True,
                    )
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    print()
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
