r"""Data-parallel DP training across processes: ``torchrun -m privsynth.models.distributed``.

Each process (gloo; training runs on the CPU) runs :func:`~privsynth.models.dp_train.train_dp` on
the same examples; Opacus' distributed support shards Poisson sampling and noise so that the
guarantee and its accounting equal a single process with the same sampling rate and steps.
Rank 0 writes the weights and the model card. On Kubernetes this runs as an indexed Job (see
``helm/privsynth/templates/training-job.yaml``).

    torchrun --nproc_per_node 2 -m privsynth.models.distributed \\
        --data scrubbed.jsonl --epsilon 8 --delta 1e-6 --epochs 3 --out run/

**Preemption.** Every rank checkpoints (weights, optimizer, accountant, its own RNG state) to
``<out>/checkpoint/`` every ``--checkpoint-every-s`` seconds and when it gets SIGTERM (what
Kubernetes sends before evicting a pod); the same command run again resumes from the latest
step all ranks saved, takes exactly the remaining steps and reports the ε of the whole run.
An interrupted run exits with :data:`EXIT_RESUMABLE` (75, ``EX_TEMPFAIL``): run it again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

import torch
from privsynth.models.dp_train import (
    Checkpointing,
    DPConfig,
    Example,
    TrainingInterrupted,
    train_dp,
)
from privsynth.models.family import tokenizer_for_preset
from privsynth.models.presets import register_local_bases

__all__ = ["EXIT_RESUMABLE", "main"]

EXIT_RESUMABLE = 75
"""Exit status of a run stopped with its state saved (SIGTERM, ``--stop-at-step``)."""


def _examples(path: Path) -> list[Example]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                out.append(Example(text=obj["text"], label=obj.get("label"), user=obj.get("user")))
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of one rank (torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    parser = argparse.ArgumentParser(description="distributed DP training (one rank)")
    parser.add_argument("--data", required=True, help="scrubbed JSONL shard (text, label)")
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--delta", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--preset", default="small")
    parser.add_argument(
        "--model-dir", default="", help="directory of local HF models (presets hf:<name>)"
    )
    parser.add_argument("--noise-multiplier", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="directory for weights.pt and card.json")
    parser.add_argument(
        "--checkpoint-every-s",
        type=float,
        default=60.0,
        help="save resumable state this often (0: only on SIGTERM or --stop-at-step)",
    )
    parser.add_argument(
        "--stop-at-step",
        type=int,
        default=0,
        help="save and exit resumably once this step is reached (time-sliced runs)",
    )
    args = parser.parse_args(argv)
    if (Path(args.out) / "card.json").exists():
        # A replacement pod of a run that finished (its checkpoints are gone): training again
        # would be a second, unaccounted release. Read the outputs instead.
        print(f"{args.out} already holds a finished run; nothing to do", file=sys.stderr)
        return 0
    if args.model_dir:
        register_local_bases(Path(args.model_dir))

    # gloo even where CUDA is present: the generator trains on the CPU (nothing moves it to a
    # GPU yet), and nccl cannot reduce CPU tensors.
    backend = "gloo"
    torch.distributed.init_process_group(backend=backend)
    torch.set_num_threads(args.threads)
    world_size = torch.distributed.get_world_size()
    checkpoint = Checkpointing(
        path=Path(args.out) / "checkpoint" / "checkpoint.pt",
        every_s=args.checkpoint_every_s,
        stop_at_step=args.stop_at_step,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        result = train_dp(
            _examples(Path(args.data)),
            config=DPConfig.for_preset(
                args.preset,
                target_epsilon=args.epsilon,
                target_delta=args.delta,
                epochs=args.epochs,
                noise_multiplier=args.noise_multiplier,
            ),
            tokenizer=tokenizer_for_preset(args.preset),
            should_stop=stop.is_set,
            checkpoint=checkpoint,
        )
    except TrainingInterrupted as exc:
        if not exc.cancelled:
            raise
        print(
            f"rank {torch.distributed.get_rank()}: stopped at step {exc.steps} with its state "
            "saved; run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_RESUMABLE
    else:
        if torch.distributed.get_rank() == 0:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "weights.pt").write_bytes(result.weights)
            card = dict(result.card)
            card["backend"] = backend
            (out / "card.json").write_text(json.dumps(card, indent=2, default=str))
            (out / "config.json").write_text(json.dumps(result.model_config))
        # The outputs are written: the run is done, and a rerun must not resume into it.
        torch.distributed.barrier()
        checkpoint.remove(torch.distributed.get_rank(), world_size)
    finally:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
