"""``privsynth demo``: the whole pipeline on an embedded server, with progress throughout.

Starts a real server on a free port (data in a temporary directory unless told otherwise),
uploads the bundled fortunes sample through the real client, lets the server scrub it, trains
a generator with DP-SGD, samples records and prints them with their provenance and the dataset's
remaining budget.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from privsynth.client.cli import watch_job
from privsynth.client.client import PrivsynthClient, RecordIn
from privsynth.client.pb import training_pb2
from privsynth.client.progress import ProgressBar
from privsynth.server.app import PrivsynthServer
from privsynth.server.config import Settings

__all__ = ["demo_records", "run_demo"]

DEMO_EPOCHS = 5
DEMO_TOPICS = ("computers", "politics", "science", "work", "love")


def demo_records(limit: int) -> Iterator[RecordIn]:
    """The bundled public sample corpus (fortunes with topic labels)."""
    ref = resources.files("privsynth.server") / "assets" / "demo_fortunes.jsonl"
    with ref.open("r", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= limit:
                return
            obj = json.loads(line)
            yield RecordIn(text=obj["text"], label=obj["label"])


def _step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns a process exit code."""
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="privsynth-demo-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        settings = Settings(data_dir=data_dir, host="127.0.0.1", grpc_port=0, metrics_port=-1)
        _step(f"starting an embedded server (data in {data_dir})")
        server = PrivsynthServer(settings)
        server.start()
        try:
            return _run(args, server, started)
        finally:
            _step("stopping the server")
            server.stop(grace=2)


def _run(args: argparse.Namespace, server: PrivsynthServer, started: float) -> int:
    _step("loading Presidio (spaCy pipeline) and the model code")
    if not server.wait_ready(timeout=300):
        print(f"server failed to start: {server.load_error}")
        return 1
    with PrivsynthClient(f"127.0.0.1:{server.port}", timeout=60) as client:
        client.wait_until_serving(timeout=60)
        n = max(1, min(args.records, 2000))
        _step(f"uploading {n} fortune-cookie records; the server scrubs PII as they arrive")
        bar = ProgressBar("uploading", total=n)
        ds = client.upload_dataset(
            demo_records(n), display_name="demo fortunes", on_sent=bar.update
        )
        bar.close()
        rep = ds.scrub_report
        print(
            f"    {ds.name}: {ds.record_count} records, {rep.records_with_pii} had PII "
            f"replaced {dict(sorted(rep.entity_counts.items()))}; residual identifiers "
            f"after scrubbing: {rep.residual_count}"
        )
        print(f"    budget cap: epsilon {ds.epsilon_cap:g}, delta {ds.delta:.3g}")

        epochs = args.epochs or DEMO_EPOCHS
        _step(
            f"training a '{args.preset}' transformer with DP-SGD at epsilon {args.epsilon:g} "
            f"({epochs} epochs)"
        )
        job = client.create_training_job(
            ds.name, target_epsilon=args.epsilon, epochs=epochs, preset=args.preset
        )
        final = watch_job(client, job.name)
        if final is None or final.state != training_pb2.JOB_STATE_SUCCEEDED:
            print(f"training did not succeed: {final.error_message if final else 'no events'}")
            return 1
        card = client.get_model(final.model).card
        print(
            f"    model {final.model}: epsilon {card.epsilon:.3f} (target {card.target_epsilon:g})"
            f", delta {card.delta:.3g}, accountant {card.accountant}, noise multiplier "
            f"{card.noise_multiplier:.3f}, sample rate {card.sample_rate:.4f}, clip "
            f"{card.max_grad_norm:g}, {card.steps} steps"
        )
        if card.base_model:
            print(
                f"    started from public base: {card.base_model.get('trained_on', '?')} "
                f"({card.base_model.get('licence', '?')}); tokenizer: "
                f"{card.tokenizer_provenance.get('trained_on', '?')}"
            )

        _step(
            f"sampling {args.samples} synthetic records, conditioned on the demo's public topic "
            "labels (the topic list ships with the sample corpus, so naming it costs no budget)"
        )
        topics = DEMO_TOPICS
        for i in range(args.samples):
            label = topics[i % len(topics)]
            for rec in client.generate(
                final.model, count=1, seed=i, max_tokens=48, label=label, temperature=0.8
            ):
                p = rec.provenance
                text = " ".join(rec.text.split())
                print(f"  [{rec.label}] {text}")
                print(
                    f"      synthetic={p.synthetic} model={p.model} epsilon={p.epsilon:.3f} "
                    f"delta={p.delta:.3g}"
                )
        b = client.get_budget(ds.name)
        print(
            f"    budget of {b.dataset}: spent {b.epsilon_spent:.3f} of {b.epsilon_cap:g}, "
            f"remaining {b.epsilon_remaining:.3f} ({b.composition})"
        )
    _step(f"done in {time.monotonic() - started:.0f}s")
    return 0
