"""The ``privsynth`` command line: one entry point, one sub-command per task.

Client commands (upload, train, watch, sample, budget, datasets/jobs/models, …) need only the
client library. ``serve`` and ``demo`` run the server in this process; they load
``privsynth.server`` on demand, and say how to install it if it is missing, so the client-only
install keeps working.

Adding a client command: ``sub.add_parser(...)`` in :func:`build_parser` with a ``cmd_*``
function that opens the server with :func:`~privsynth.client.cli_support.connect` and prints
JSON when :func:`~privsynth.client.cli_support.json_mode` says so. The global options (server,
token, TLS, ``--json``) reach it on their own (:func:`~privsynth.client.cli_support.globalize`)
and failures become the documented exit codes (:mod:`privsynth.client.exit_codes`) in
:func:`main`; a test checks every command has ``--help`` and the global options.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib
import importlib.metadata
import json
import os
import re
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc
from privsynth.client import cli_evaluate, cli_resources
from privsynth.client.audit import AuditEntry, verify_chain
from privsynth.client.cli_support import (
    UsageError,
    add_global_options,
    bearer_token,
    connect,
    globalize,
    int32_arg,
    int64_arg,
    json_mode,
    message_dict,
    name_arg,
    print_json,
    resource_name,
    table,
)
from privsynth.client.client import PrivsynthClient, RecordIn
from privsynth.client.errors import BudgetExhausted, Overloaded, PrivsynthClientError, ServerError
from privsynth.client.exit_codes import ExitCode, for_error, help_table
from privsynth.client.mailfiles import MAIL_FORMATS, MAIL_RECORD_FORMAT
from privsynth.client.pb import training_pb2
from privsynth.client.progress import ProgressBar, UploadProgress
from privsynth.client.sources import (
    FORMATS,
    FileSourceError,
    SourceRecord,
    SourceStats,
    detect_format,
)
from privsynth.client.sources import read_records as read_source

__all__ = ["main"]

TERMINAL = {
    training_pb2.JOB_STATE_SUCCEEDED,
    training_pb2.JOB_STATE_FAILED,
    training_pb2.JOB_STATE_CANCELLED,
}


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


EXIT_DATAERR = int(ExitCode.DATAERR)
"""Exit code for a corpus file that cannot be uploaded as it is (sysexits' EX_DATAERR)."""
EXIT_NOINPUT = int(ExitCode.NOINPUT)
"""Exit code for a corpus file that is missing or unreadable (sysexits' EX_NOINPUT)."""
LOCAL_COMMANDS = ("serve", "scrub", "pretrain", "demo")
"""Commands that run here rather than call a server: no connection options, no --json."""
_SHOWN_ISSUES = 10
_RECORD_FIELD = re.compile(r"records\[(\d+)\]")


class CorpusFileError(Exception):
    """A corpus file that cannot be uploaded; the message names lines, never their content."""

    def __init__(self, message: str, *, exit_code: int = EXIT_DATAERR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _record(rec: SourceRecord, label_field: str, user_field: str) -> RecordIn:
    return RecordIn(
        text=rec.text,
        label=rec.fields.get(label_field, ""),
        user_id=rec.fields.get(user_field, ""),
    )


def _source(
    path: Path, stats: SourceStats, *, fmt: str | None, text_field: str, keep: Sequence[str]
) -> Iterator[SourceRecord]:
    """The shared reader, with a missing file or an unknown format as :class:`CorpusFileError`."""
    try:
        yield from read_source(path, stats, fmt=fmt, text_field=text_field, keep_fields=keep)
    except FileSourceError as exc:
        raise CorpusFileError(f"{path}: {exc}") from None
    except OSError as exc:  # missing, a directory, no permission: the reason, not the data
        reason = exc.strerror or type(exc).__name__
        raise CorpusFileError(f"cannot read {path}: {reason}", exit_code=EXIT_NOINPUT) from None


def _issues(path: Path, stats: SourceStats) -> str:
    listed = sorted([*stats.malformed, *stats.oversized], key=lambda i: i.line)
    lines = [f"{path}:{issue.line}: {issue.reason}" for issue in listed[:_SHOWN_ISSUES]]
    total = stats.malformed_count + stats.oversized_count
    if total > len(lines):
        lines.append(f"... and {total - len(lines)} more malformed or oversized records")
    return "\n".join(lines)


def read_records(
    path: Path,
    *,
    text_field: str,
    label_field: str,
    user_field: str,
    fmt: str | None = None,
    on_line: Callable[[int], None] | None = None,
) -> Iterator[RecordIn]:
    """Records of a JSONL, CSV, Parquet or text file (gzip too), through the shared reader.

    JSONL and CSV carry ``text_field``, ``label_field`` and ``user_field``; plain text is one
    record per line. The format comes from the name unless ``fmt`` is given. ``on_line`` hears
    each record's line number as it is read (so a server's "record i" can name its line).

    Raises:
        CorpusFileError: A malformed line (by number, never its content), a missing file, an
            unknown format or a missing text column.
    """
    stats = SourceStats()
    for rec in _source(path, stats, fmt=fmt, text_field=text_field, keep=(label_field, user_field)):
        if stats.malformed_count or stats.oversized_count:
            raise CorpusFileError(_issues(path, stats))
        if on_line is not None:
            on_line(rec.line)
        yield _record(rec, label_field, user_field)
    if stats.malformed_count or stats.oversized_count:
        raise CorpusFileError(_issues(path, stats))


def check_corpus(
    path: Path, *, text_field: str, label_field: str, user_field: str, fmt: str | None = None
) -> int:
    """Read the whole file once, before anything is sent; returns its record count.

    Raises:
        CorpusFileError: As :func:`read_records`, listing up to ten malformed lines, or an
            empty file.
    """
    stats = SourceStats()
    keep = (label_field, user_field)
    count = sum(1 for _ in _source(path, stats, fmt=fmt, text_field=text_field, keep=keep))
    if stats.malformed_count or stats.oversized_count:
        raise CorpusFileError(
            f"{stats.malformed_count} malformed and {stats.oversized_count} oversized "
            "record(s); nothing was uploaded\n" + _issues(path, stats)
        )
    if count == 0:
        raise CorpusFileError(f"{path}: no records (empty file, or only blank lines)")
    return count


_client = connect  # the name the commands below were written with


def _job_suffix(job: Any) -> str:
    p = job.progress
    eta = f" eta {p.eta_seconds:.0f}s" if p.eta_seconds else ""
    return f"loss {p.loss:.3f} eps {p.epsilon_spent:.3f}{eta}"


def watch_job(client: PrivsynthClient, name: str, *, quiet: bool = False) -> Any:
    """Follow a job with a progress bar; returns its final state."""
    bar = None if quiet else ProgressBar("training")
    job = None
    for job in client.watch_training_job(name):
        if bar is not None and job.progress.total_steps:
            bar.update(
                int(job.progress.step),
                total=int(job.progress.total_steps),
                suffix=_job_suffix(job),
            )
    if bar is not None:
        bar.close()
    return job


def _say(args: argparse.Namespace, text: str) -> None:
    """A line for people: stdout, or stderr when stdout carries --json output."""
    print(text, file=sys.stderr if json_mode(args) else sys.stdout)


def cmd_upload(args: argparse.Namespace) -> int:
    """Upload a corpus file: read and check it whole first, then stream it."""
    path = Path(args.file)
    fields = {
        "text_field": args.text_field,
        "label_field": args.label_field,
        "user_field": args.user_field,
        "fmt": args.format,
    }
    total = check_corpus(path, **fields)
    # E-mail goes one message per record; the server stores its scrubbed Subject and body.
    mail = (args.format or detect_format(path)[0]) in MAIL_FORMATS
    # The second read streams. Should the file change in between, the reader's
    # CorpusFileError comes out of upload_dataset as it was raised.
    lines = array("Q")  # record i came from line lines[i]: 8 bytes a record
    try:
        with _client(args) as client, UploadProgress(total) as progress:
            ds = client.upload_dataset(
                read_records(path, **fields, on_line=lines.append),
                display_name=args.name or path.name,
                epsilon_cap=args.epsilon_cap,
                delta=args.delta,
                on_sent=progress.sent,
                record_format=MAIL_RECORD_FORMAT if mail else "",
            )
    except PrivsynthClientError as exc:
        code = _failure(exc)
        for field in exc.field_violations:  # the server counts records from 0, files lines
            found = _RECORD_FIELD.match(field)
            if found and int(found[1]) < len(lines):
                print(f"  records[{found[1]}] is {path}:{lines[int(found[1])]}", file=sys.stderr)
        return code
    if json_mode(args):
        print_json(message_dict(ds))
        return 0
    rep = ds.scrub_report
    print(
        f"dataset {ds.name}: {ds.record_count} records, cap eps={ds.epsilon_cap:g} "
        f"delta={ds.delta:.3g}"
    )
    print(
        f"scrubbed: {rep.records_with_pii} records had PII; "
        f"{dict(sorted(rep.entity_counts.items()))}; strategies "
        f"{dict(sorted(rep.strategy_counts.items()))}; residual identifiers "
        f"{rep.residual_count}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Create a training job (and follow it unless --no-watch)."""
    with _client(args) as client:
        job = client.create_training_job(
            resource_name("datasets", args.dataset),
            target_epsilon=args.epsilon,
            delta=args.delta,
            epochs=args.epochs,
            preset=args.preset or "",
            label_distribution=args.label_distribution,
            label_epsilon_share=args.label_epsilon_share,
            distributed=args.distributed,
            holdout_fraction=args.holdout_fraction,
            label_prompt=args.label_prompt,
        )
        _say(
            args,
            f"job {job.name} -> model {job.model} (preset {job.preset}, "
            f"eps={job.target_epsilon:g}, delta={job.delta:.3g})",
        )
        if args.distributed:
            _say(
                args,
                "reserved; launch it with: torchrun --nproc_per_node N -m "
                f"privsynth.server.jobs.distributed --job {job.name} "
                "(on Kubernetes: the chart's trainingJob with trainingJob.job set)",
            )
        if args.no_watch:
            if json_mode(args):
                print_json(message_dict(job))
            return 0
        final = watch_job(client, job.name)
    return _report_job(args, final)


def _report_job(args: argparse.Namespace, job: Any) -> int:
    if json_mode(args):
        print_json(message_dict(job))
    else:
        state = training_pb2.JobState.Name(job.state)
        print(f"{job.name}: {state}, eps spent {job.progress.epsilon_spent:.3f}")
    if job.error_message:
        print(f"error: {job.error_message}", file=sys.stderr)
    return ExitCode.OK if job.state == training_pb2.JOB_STATE_SUCCEEDED else ExitCode.NEGATIVE


def cmd_watch(args: argparse.Namespace) -> int:
    """Follow a job until it ends."""
    with _client(args) as client:
        return _report_job(args, watch_job(client, resource_name("jobs", args.job)))


def cmd_sample(args: argparse.Namespace) -> int:
    """Generate records and print them as JSON lines with provenance."""
    with _client(args) as client:
        for rec in client.generate(
            resource_name("models", args.model),
            count=args.count,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.max_tokens,
            seed=args.seed,
            label=args.label,
            guidance=args.guidance,
        ):
            p = rec.provenance
            print(
                json.dumps(
                    {
                        "text": rec.text,
                        "label": rec.label or None,
                        "synthetic": p.synthetic,
                        "model": p.model,
                        "epsilon": round(p.epsilon, 4),
                        "delta": p.delta,
                    },
                    ensure_ascii=False,
                )
            )
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    """Print a dataset's budget (and ledger with --ledger)."""
    dataset = resource_name("datasets", args.dataset)
    with _client(args) as client:
        b = client.get_budget(dataset)
        if json_mode(args):
            data = message_dict(b)
            if args.ledger:
                entries = client.list_ledger_entries(dataset, page_size=500)
                data["ledger"] = [message_dict(e) for e in entries]
            print_json(data)
            return 0
        print(
            f"{b.dataset}: cap eps={b.epsilon_cap:g} delta={b.delta:.3g}; spent "
            f"{b.epsilon_spent:.4f}, reserved {b.epsilon_reserved:.4f}, remaining "
            f"{b.epsilon_remaining:.4f} at delta={max(b.delta, b.delta_used):.3g}"
        )
        print(
            f"  plain sum: spent {b.epsilon_spent_sum:.4f}, reserved "
            f"{b.epsilon_reserved_sum:.4f}; composition: {b.composition}"
        )
        if args.ledger:
            for e in client.list_ledger_entries(dataset, page_size=500):
                event = (
                    f" sigma={e.noise_multiplier:.4g} q={e.sample_rate:.4g} steps={e.steps}"
                    if e.noise_multiplier
                    else ""
                )
                print(
                    f"  #{e.id} {e.create_time.ToDatetime():%Y-%m-%d %H:%M:%S} {e.kind:8} "
                    f"eps={e.epsilon:.4f} delta={e.delta:.3g}{event} {e.job} {e.note}"
                )
    return 0


def cmd_set_cap(args: argparse.Namespace) -> int:
    """Change a dataset's budget cap (admin)."""
    token = bearer_token(args) or os.environ.get("PRIVSYNTH_ADMIN_TOKEN", "")
    if args.token_file:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    if not token:
        raise UsageError(
            "set-cap needs an admin's token: --token/PRIVSYNTH_TOKEN, --token-file or "
            "PRIVSYNTH_ADMIN_TOKEN"
        )
    with _client(args, token=token) as client:
        b = client.update_budget_cap(
            resource_name("datasets", args.dataset),
            epsilon_cap=args.epsilon_cap,
            delta=args.delta,
        )
    if json_mode(args):
        print_json(message_dict(b))
        return 0
    print(
        f"{b.dataset}: cap now eps={b.epsilon_cap:g} delta={b.delta:.3g}; "
        f"remaining {b.epsilon_remaining:.4f}"
    )
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Write the audit log as JSON lines (to a file or stdout); the head hash goes to stderr."""
    with contextlib.ExitStack() as stack:
        out: TextIO = sys.stdout
        if args.out not in (None, "-"):
            out = stack.enter_context(Path(args.out).open("w", encoding="utf-8"))
        head, count = "", 0
        with _client(args) as client:
            for entry in client.export_audit_log():
                out.write(json.dumps(entry.to_json(), sort_keys=True) + "\n")
                head, count = entry.hash, count + 1
    print(f"exported {count} audit entries; head {head or '-'}", file=sys.stderr)
    return 0


def _read_audit_file(path: Path) -> Iterator[AuditEntry]:
    with _open_text(path) as fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield AuditEntry.from_json(json.loads(line))
                except (json.JSONDecodeError, ValueError, AttributeError):
                    raise CorpusFileError(f"{path}:{lineno}: not an audit entry") from None
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            raise CorpusFileError(
                f"{path}:{lineno + 1}: not UTF-8 text (or a damaged .gz)"
            ) from None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify the audit chain (from a JSON-lines export or live from the server)."""
    if args.file:
        result = verify_chain(_read_audit_file(Path(args.file)), expected_head=args.head)
        if not result.entries and not result.problems:
            # An export always holds the entries up to its head; an empty file proves
            # nothing, and reading it as "intact" would pass a file truncated to nothing.
            result.problems.append(f"{args.file} holds no audit entries: nothing was verified")
    else:
        with _client(args) as client:
            result = verify_chain(client.export_audit_log(), expected_head=args.head)
    if json_mode(args):
        print_json(
            {
                "ok": result.ok,
                "entries": result.entries,
                "head": result.head,
                "problems": result.problems,
            }
        )
        return ExitCode.OK if result.ok else ExitCode.NEGATIVE
    if result.ok:
        print(f"audit log intact: {result.entries} entries, head {result.head}")
        return 0
    print(f"audit log BROKEN: {len(result.problems)} problem(s)", file=sys.stderr)
    for problem in result.problems:
        print(f"  {problem}", file=sys.stderr)
    return ExitCode.NEGATIVE


def cmd_audit_report(args: argparse.Namespace) -> int:
    """Write the auditor's HTML report on one dataset, and the same data as JSON."""
    from privsynth.client.report import collect, render_html

    if not args.dataset:
        raise UsageError("--dataset must name a dataset (datasets/<id> or the id)")
    dataset = resource_name("datasets", args.dataset)
    out = Path(args.out or f"audit-report-{dataset.split('/', 1)[1]}.html")
    to_stdout = json_mode(args)
    json_out = out.with_suffix(".json") if to_stdout or not args.json else Path(args.json)
    with _client(args) as client:
        data = collect(client, dataset)
    out.write_text(render_html(data), encoding="utf-8")
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if to_stdout:
        sys.stdout.write(text)
    else:
        json_out.write_text(text, encoding="utf-8")
    audit = data["audit_log"]
    chain = (
        ("intact" if audit["chain_intact"] else "BROKEN") if audit["readable"] else "not readable"
    )
    _say(
        args,
        f"wrote {out}{'' if to_stdout else f' and {json_out}'}: {len(data['ledger'])} ledger "
        f"entries, {len(data['models'])} models, audit chain {chain}",
    )
    intact = not audit["readable"] or audit["chain_intact"]
    return ExitCode.OK if intact else ExitCode.NEGATIVE


def _audit_row(result: Any) -> list[str]:
    verdict = "REFUTED" if result.refuted else "not refuted"
    return [
        result.preset,
        f"{result.epsilon_claimed:.3f}",
        f"{result.epsilon_lower_bound:.3f}",
        f"{result.delta:.2g}",
        str(result.canaries),
        f"{result.correct}/{result.guesses}",
        f"{result.wall_seconds:.0f}",
        verdict,
    ]


def cmd_audit_privacy(args: argparse.Namespace) -> int:
    """Run the canary audit at each requested epsilon; print a table and write JSON."""
    header = ["preset", "eps claimed", "eps lower bound", "delta", "canaries", "correct/guesses"]
    header += ["wall s", "verdict"]
    rows, results = [], []
    with _client(args) as client:
        for epsilon in args.epsilon:
            bar = None if args.quiet else ProgressBar(f"audit eps={epsilon:g}")
            result = None
            for event in client.audit_privacy(
                target_epsilon=epsilon,
                preset=args.preset or "",
                delta=args.delta,
                epochs=args.epochs,
                canaries=args.canaries,
                public_records=args.public_records,
                dataset=resource_name("datasets", args.dataset),
            ):
                if event.HasField("result"):
                    result = event.result
                elif bar is not None and event.progress.total_steps:
                    bar.update(int(event.progress.step), total=int(event.progress.total_steps))
            if bar is not None:
                bar.close()
            if result is None:
                raise ServerError(grpc.StatusCode.INTERNAL, "the audit ended without a result")
            rows.append(_audit_row(result))
            results.append(json.loads(result.json))
    _say(args, table(header, rows))
    _say(args, "95% confidence; a lower bound above the claimed epsilon proves the claim false.")
    text = json.dumps(results, indent=2, sort_keys=True) + "\n"
    if json_mode(args):
        sys.stdout.write(text)
    elif args.json:
        Path(args.json).write_text(text, encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return ExitCode.NEGATIVE if any(r["refuted"] for r in results) else ExitCode.OK


def _server_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise SystemExit(
            f"this command needs the server components ({exc.name} is missing): "
            "pip install 'privsynth[server]' (with torch==2.13.0 installed first)"
        ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM."""
    return int(_server_module("privsynth.server.main").serve_from_cli(args))


def cmd_scrub(args: argparse.Namespace) -> int:
    """Scrub a local file with the server's engine (no server needed)."""
    return int(_server_module("privsynth.server.scrubbing.cli").run_cli(args))


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pretrain a base model on a public corpus (no DP needed: the data is public)."""
    return int(_server_module("privsynth.models.pretrain").run_cli(args))


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the end-to-end demo on an embedded server."""
    return int(_server_module("privsynth.server.demo").run_demo(args))


def _version() -> str:
    try:
        release = importlib.metadata.version("privsynth")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        release = "unknown"
    return f"privsynth {release} (API privsynth.v1)"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by tests for ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="privsynth",
        description="Privacy-preserving synthetic text: scrub PII, train with DP, sample.",
        epilog=help_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "upload",
        help="upload a corpus (scrubbed by the server)",
        description="Upload a JSONL or CSV file (text/label/user_id fields or columns), a "
        "Parquet file (needs privsynth[server]), plain text (one record per line) or e-mail "
        "(.eml, .mbox: one record per message, of which the server keeps the scrubbed Subject "
        "and body); .gz accepted. The whole file is read and checked before anything is sent: "
        f"malformed or oversized records are listed by line (exit {EXIT_DATAERR}), a missing "
        f"file exits {EXIT_NOINPUT}. The server scrubs PII before storing anything.",
    )
    p.add_argument(
        "file", help="corpus file: .jsonl, .csv, .parquet, .txt, .eml or .mbox (optionally .gz)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="file format (default: from the file name)",
    )
    p.add_argument("--name", default="", help="display name (default: file name)")
    p.add_argument("--epsilon-cap", type=float, default=None, help="privacy budget cap")
    p.add_argument("--delta", type=float, default=None, help="delta of the cap")
    p.add_argument("--text-field", default="text", help="JSON field holding the text")
    p.add_argument("--label-field", default="label", help="JSON field holding the label")
    p.add_argument("--user-field", default="user_id", help="JSON field holding the user id")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser(
        "train",
        help="train a DP generator on a dataset",
        description="Reserve the target epsilon and train with DP-SGD; follows "
        "progress unless --no-watch.",
    )
    p.add_argument("dataset", help="datasets/<id> or the id")
    p.add_argument("--epsilon", type=float, required=True, help="target epsilon (> 0)")
    p.add_argument("--delta", type=float, default=None, help="delta (default: cap delta / 10)")
    p.add_argument("--epochs", type=int32_arg, default=None, help="epochs (default 3)")
    p.add_argument(
        "--preset",
        type=name_arg,
        default=None,
        help="model preset: smollm2-guided (the default when every record has a label and "
        "neither --epochs nor --distributed is given: SmolLM2-135M untrained, decoded with "
        "per-label word distributions released with DP), smollm2 (the default otherwise: "
        "DP-LoRA on SmolLM2-135M, ~20 min per 5k records on 2 cores), small (fast), "
        "small-scratch, tiny, or hf:NAME for a local model the operator installed under "
        "PRIVSYNTH_MODEL_DIR",
    )
    p.add_argument(
        "--label-distribution",
        choices=("dp", "public"),
        default=None,
        help="label mix for unlabelled sampling: dp (default with labels: noisy counts, "
        "charged to epsilon) or public (you declare the dataset's label mix public; no epsilon)",
    )
    p.add_argument(
        "--label-epsilon-share",
        type=float,
        default=None,
        help="with dp labels: share of epsilon for the label release (default 0.1)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="reserve the epsilon now and leave the job for a torchrun launch across processes "
        "(privsynth.server.jobs.distributed; the chart's trainingJob) instead of a server worker",
    )
    p.add_argument(
        "--holdout-fraction",
        type=float,
        default=None,
        help="share of records kept out of training so the model can be evaluated "
        "(privsynth evaluate), 0..0.5; default: the server's (10%%); 0: none",
    )
    p.add_argument(
        "--label-prompt",
        default=None,
        metavar="TEMPLATE",
        help="how a label is asked for, with {label} for the label, e.g. "
        '"Write a short {label} review." (Hugging Face presets only; default: '
        '"Write a short text about {label}.")',
    )
    p.add_argument("--no-watch", action="store_true", help="return after creating the job")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "watch",
        help="follow a training job",
        description="Follow a job with a progress bar until it ends.",
    )
    p.add_argument("job", help="jobs/<id> or the id")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "sample",
        help="generate synthetic records",
        description="Print synthetic records as JSON lines, each with its "
        "provenance (synthetic, model, epsilon, delta).",
    )
    p.add_argument("model", help="models/<id> or the id")
    p.add_argument("-n", "--count", type=int32_arg, default=10, help="number of records")
    p.add_argument("--temperature", type=float, default=None, help="in (0, 5], default 1")
    p.add_argument("--top-p", type=float, default=None, help="in (0, 1], default 0.95")
    p.add_argument(
        "--max-tokens",
        type=int32_arg,
        default=None,
        help="new tokens per record (default: the model's, 32 for guided presets, else 64)",
    )
    p.add_argument("--seed", type=int64_arg, default=0, help="same seed, same records")
    p.add_argument("--label", default=None, help="condition on this label")
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        metavar="W",
        help="classifier-free guidance on the label, 0-10 (default off); sharper per-label "
        "text at twice the sampling cost",
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "budget",
        help="show a dataset's privacy budget",
        description="Show cap, spent, reserved and remaining epsilon: composed across jobs "
        "(PLD accountant), with the plain sum beside it.",
    )
    p.add_argument("dataset", help="datasets/<id> or the id")
    p.add_argument("--ledger", action="store_true", help="also list the ledger entries")
    p.set_defaults(func=cmd_budget)

    p = sub.add_parser(
        "set-cap",
        help="change a dataset's budget cap (admin)",
        description="Change a dataset's epsilon (and optionally delta) cap. Needs an admin "
        "identity's token (--token/PRIVSYNTH_TOKEN, or PRIVSYNTH_ADMIN_TOKEN or --token-file); "
        "the change is written to the ledger and the audit log. Lowering a cap refunds "
        "nothing; it only refuses new jobs.",
    )
    p.add_argument("dataset", help="datasets/<id> or the id")
    p.add_argument("--epsilon-cap", type=float, required=True, help="new epsilon cap (> 0)")
    p.add_argument("--delta", type=float, default=None, help="new delta cap (default: unchanged)")
    p.add_argument("--token-file", default=None, help="file holding the admin token")
    p.set_defaults(func=cmd_set_cap)

    p = sub.add_parser(
        "audit",
        help="export or verify the hash-chained audit log; audit the DP mechanism",
        description="The audit log records dataset creation, scrub reports, reservations, "
        "commits, refusals, cancellations, deletions and cap changes, each with actor and "
        "time, in a SHA-256 hash chain. `audit privacy` audits the DP-SGD mechanism itself.",
    )
    audit_sub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    a = audit_sub.add_parser(
        "export",
        help="write the audit log as JSON lines",
        description="Write every audit entry as one JSON object per line; the head hash is "
        "printed to stderr (keep it to detect later truncation with `audit verify --head`).",
    )
    a.add_argument("-o", "--out", default=None, help="output file (default: stdout)")
    a.set_defaults(func=cmd_audit_export)
    a = audit_sub.add_parser(
        "verify",
        help="check the chain for edited, deleted or reordered entries",
        description="Recompute every hash and link, from an export file or live from the "
        "server. Exit code 0 when intact, 1 when any entry was edited, deleted or reordered.",
    )
    a.add_argument("--file", default=None, help="a JSON-lines export (default: ask the server)")
    a.add_argument("--head", default=None, help="a head hash recorded earlier that must appear")
    a.set_defaults(func=cmd_audit_verify)
    a = audit_sub.add_parser(
        "report",
        help="write the auditor's HTML report on one dataset",
        description="Write a self-contained HTML report (inline SVG plots: budget spent over "
        "time, epsilon against training steps per model; the parameters of every run; ledger "
        "and audit entries with the chain check) and the same data as JSON, all read over "
        "gRPC. Run it as an auditor to report on any tenant's dataset. Exit code 1 when the "
        "audit chain is broken.",
    )
    a.add_argument("--dataset", required=True, help="dataset name, datasets/<id> (or the id)")
    a.add_argument("-o", "--out", default=None, help="HTML file (default: audit-report-<id>.html)")
    a.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="JSON file (default: the HTML path with .json); --json alone: print it on stdout",
    )
    a.set_defaults(func=cmd_audit_report)
    a = audit_sub.add_parser(
        "privacy",
        help="audit the DP-SGD mechanism with canaries (empirical lower bound on epsilon)",
        description="Ask the server to audit a preset's DP-SGD with the one-run method of "
        "Steinke, Nasr and Jagielski (NeurIPS 2023): random canary records, each included "
        "with probability 1/2, are trained with the job's exact mechanism on the public corpus "
        "shipped with the server; each canary's inclusion is guessed from its loss and the "
        "guesses give a 95%-confidence lower bound on epsilon. Prints the claimed epsilon "
        "beside the lower bound as a table (and JSON with --json). Spends no privacy budget. "
        "One-run audits are loose: a bound below the claim does not prove the claim, a bound "
        "above it proves it false. Exit code 1 when any claim is refuted.",
    )
    a.add_argument(
        "--epsilon",
        type=float,
        nargs="+",
        required=True,
        help="target epsilon(s) to audit, e.g. --epsilon 1 4 8 (one training run each)",
    )
    a.add_argument("--preset", type=name_arg, default=None, help="training preset (default small)")
    a.add_argument(
        "--canaries",
        type=int32_arg,
        default=None,
        help="canary records m, 100-10000 (default 1000)",
    )
    a.add_argument("--delta", type=float, default=None, help="delta (default: the job rule)")
    a.add_argument("--epochs", type=int32_arg, default=None, help="epochs (default 3)")
    a.add_argument(
        "--public-records",
        type=int32_arg,
        default=None,
        help="public corpus records trained on beside the canaries (default 1000)",
    )
    a.add_argument(
        "--dataset",
        default="",
        help="audit on this dataset's records (datasets/<id>) instead of the public corpus: "
        "charged to its budget like a training job (members of its tenant only)",
    )
    a.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="also write the results as JSON to FILE; --json alone: print them on stdout (the "
        "table goes to stderr)",
    )
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_audit_privacy)

    cli_resources.register(sub)
    cli_evaluate.register(sub)

    p = sub.add_parser(
        "serve",
        help="run the server",
        description="Run the gRPC server. Settings come from PRIVSYNTH_* "
        "environment variables; these flags override them.",
    )
    p.add_argument("--host", default=None, help="bind address (PRIVSYNTH_HOST)")
    p.add_argument("--port", type=int, default=None, help="gRPC port (PRIVSYNTH_GRPC_PORT)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus port, -1 disables (PRIVSYNTH_METRICS_PORT)",
    )
    p.add_argument("--data-dir", default=None, help="data directory (PRIVSYNTH_DATA_DIR)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "scrub",
        help="scrub PII from a local file (no server needed)",
        description="Scrub a local JSONL, CSV, Parquet, text or e-mail file (optionally .gz) "
        "with the same engine as uploads, in two worker processes, and print the report (counts "
        "per entity type and strategy, malformed lines by number, residual identifiers). Writes "
        "JSONL with the scrubbed text and the label; e-mail (.eml, .mbox) is written back as "
        "e-mail with its structure kept. A record left out (malformed, or for its size) is "
        f"listed by line and the command exits {EXIT_DATAERR} unless --skip-malformed / "
        "--skip-oversized is given.",
    )
    p.add_argument("file", help="input file")
    p.add_argument(
        "--out",
        default=None,
        help="output (default: NAME.scrubbed.jsonl, or NAME.scrubbed.eml / .mbox for e-mail)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="file format (default: from the file name)",
    )
    p.add_argument("--text-field", default="text", help="field holding the text")
    p.add_argument("--policy", default=None, help="strategy YAML (default: conf/scrub.yaml)")
    p.add_argument(
        "--key-file",
        default=None,
        help="secret for hash/pseudonym strategies (or env PRIVSYNTH_SCRUB_KEY); never stored",
    )
    p.add_argument("--workers", type=int32_arg, default=2, help="worker processes (1 or more)")
    p.add_argument(
        "--oversize",
        choices=("chunk", "refuse"),
        default="chunk",
        help="documents over the size limit: scrub in pieces or refuse",
    )
    p.add_argument(
        "--skip-malformed",
        action="store_true",
        help="leave out malformed records (bad JSON, a missing text field, a message without "
        f"headers) and still exit 0 (default: list them and exit {EXIT_DATAERR})",
    )
    p.add_argument(
        "--skip-oversized",
        action="store_true",
        help="leave out records over the size limit (too large to read, or refused) and "
        f"still exit 0 (default: list them and exit {EXIT_DATAERR})",
    )
    p.set_defaults(func=cmd_scrub)

    p = sub.add_parser(
        "pretrain",
        help="pretrain a base model on PUBLIC text",
        description="Pretrain the small transformer without DP on a public corpus (default: "
        "the bundled public-domain Jane Austen paragraphs) and write a base directory usable as "
        "a training preset's base. Never point this at private data: the result carries no "
        "privacy guarantee.",
    )
    p.add_argument(
        "--corpus",
        default=None,
        help="public JSONL(.gz) with a text field (default: bundled Austen paragraphs)",
    )
    p.add_argument("--preset", default="small", help="architecture: small or tiny")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--licence", default="public domain", help="licence of the corpus")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo on an embedded server",
        description="Start an embedded server, upload the bundled fortunes "
        "sample, scrub it, train with DP at epsilon 8, sample 10 records.",
    )
    p.add_argument("--epsilon", type=float, default=8.0, help="target epsilon (default 8)")
    p.add_argument("--records", type=int, default=2000, help="records to upload (max 2000)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs")
    p.add_argument("--preset", default="small", help="model preset (default small)")
    p.add_argument("--samples", type=int, default=10, help="records to generate")
    p.add_argument(
        "--data-dir",
        default=None,
        help="keep the demo's data here (default: a temporary directory)",
    )
    p.set_defaults(func=cmd_demo)
    globalize(parser, skip=LOCAL_COMMANDS)
    return parser


def _failure(exc: PrivsynthClientError | UsageError | CorpusFileError) -> int:
    """Say on stderr what went wrong (never with a traceback); the exit code for it."""
    if isinstance(exc, UsageError):
        print(f"privsynth: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if isinstance(exc, CorpusFileError):
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, BudgetExhausted):
        print(
            f"error: {exc.message} (remaining epsilon {exc.epsilon_remaining:g})", file=sys.stderr
        )
    elif isinstance(exc, Overloaded):
        print(
            f"error: the server is busy: {exc.message}\n"
            f"  nothing was done; retry in {exc.retry_after_s or 1.0:g} s or later",
            file=sys.stderr,
        )
    else:
        reason = f" [{exc.reason}]" if exc.reason else ""
        print(f"error: {exc}{reason}", file=sys.stderr)
        for field, why in exc.field_violations.items():
            print(f"  {field}: {why}", file=sys.stderr)
        if isinstance(exc, ServerError) and exc.request_id:
            print(f"  request id {exc.request_id}: quote it to the operator", file=sys.stderr)
    return for_error(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``privsynth`` console script; returns an :class:`ExitCode`."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (PrivsynthClientError, UsageError, CorpusFileError) as exc:
        return _failure(exc)
    except BrokenPipeError:  # `privsynth sample ... | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so exit's flush stays quiet
        return ExitCode.OK
    except OSError as exc:  # a token, certificate, key, audit export or output file
        if exc.filename is None:
            raise  # not a file of the caller's: a fault, with its traceback
        print(f"error: cannot use {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.NOINPUT
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
