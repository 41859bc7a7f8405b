"""``privsynth datasets|jobs|models ...``: find, inspect, cancel and delete what the server holds.

One sub-command group per resource collection, each a thin layer over the client's list, get,
cancel and delete calls: a table or ``key: value`` lines for people, the messages as JSON with
``--json`` for scripts. Names are accepted with or without their collection prefix
(``datasets/0a1b...`` or ``0a1b...``).

There is no ``jobs delete``: the API keeps every job, since its record is the account of what
was spent on the dataset's budget; ``jobs cancel`` stops one.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from privsynth.client.cli_support import (
    connect,
    int32_arg,
    json_mode,
    message_dict,
    print_json,
    resource_name,
    table,
)
from privsynth.client.client import PrivsynthClient
from privsynth.client.pb import models_pb2, training_pb2
from privsynth.client.printing import printable

__all__ = ["register"]


def _time(ts: Timestamp) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if ts.seconds else "-"


def _size(size_bytes: int) -> str:
    """Bytes for a table: ``812 B``, ``3.4 MB`` (powers of 1,000); ``-`` when not recorded."""
    if size_bytes <= 0:
        return "-"
    size, unit = float(size_bytes), "B"
    for bigger in ("kB", "MB", "GB"):
        if size < 1000:
            break
        size, unit = size / 1000, bigger
    return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"


def _job_state(job: training_pb2.TrainingJob) -> str:
    return training_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")


def _model_state(model: models_pb2.Model) -> str:
    return models_pb2.ModelState.Name(model.state).removeprefix("MODEL_STATE_")


@dataclass(frozen=True)
class _Collection:
    """How one collection is listed, shown and changed."""

    name: str
    """The collection, as in resource names (``datasets``)."""
    noun: str
    columns: Sequence[tuple[str, Callable[[Any], str]]]
    listing: Callable[[PrivsynthClient, argparse.Namespace], Iterable[Message]]
    get: Callable[[PrivsynthClient, str], Message]


DATASETS = _Collection(
    name="datasets",
    noun="dataset",
    columns=(
        ("NAME", lambda d: d.name),
        ("DISPLAY NAME", lambda d: d.display_name),
        ("RECORDS", lambda d: str(d.record_count)),
        ("SIZE", lambda d: _size(d.size_bytes)),
        ("EPS CAP", lambda d: f"{d.epsilon_cap:g}"),
        ("CREATED", lambda d: _time(d.create_time)),
    ),
    listing=lambda c, args: c.list_datasets(page_size=args.page_size),
    get=lambda c, name: c.get_dataset(name),
)
JOBS = _Collection(
    name="jobs",
    noun="training job",
    columns=(
        ("NAME", lambda j: j.name),
        ("DATASET", lambda j: j.dataset),
        ("STATE", _job_state),
        ("TARGET EPS", lambda j: f"{j.target_epsilon:g}"),
        ("EPS SPENT", lambda j: f"{j.progress.epsilon_spent:.3f}"),
        ("MODEL", lambda j: j.model),
        ("CREATED", lambda j: _time(j.create_time)),
    ),
    listing=lambda c, args: c.list_training_jobs(
        dataset=resource_name("datasets", args.dataset), page_size=args.page_size
    ),
    get=lambda c, name: c.get_training_job(name),
)
MODELS = _Collection(
    name="models",
    noun="model",
    columns=(
        ("NAME", lambda m: m.name),
        ("DATASET", lambda m: m.dataset),
        ("STATE", _model_state),
        ("EPS", lambda m: f"{m.card.epsilon:.3f}"),
        ("PRESET", lambda m: m.card.preset),
        ("CREATED", lambda m: _time(m.create_time)),
    ),
    listing=lambda c, args: c.list_models(
        dataset=resource_name("datasets", args.dataset), page_size=args.page_size
    ),
    get=lambda c, name: c.get_model(name),
)


def _lines(data: dict[str, Any], indent: str = "") -> list[str]:
    """``key: value`` lines of a message's JSON, nested maps indented under their key."""
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.append(f"{indent}{key}:")
            out.extend(_lines(value, indent + "  "))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out.append(f"{indent}{key}: {len(value)} entries (see --json)")
        else:
            out.append(f"{indent}{key}: {printable(str(value))}")
    return out


def _list(spec: _Collection) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with connect(args) as client:
            items = list(itertools.islice(spec.listing(client, args), args.limit))
        if json_mode(args):
            print_json([message_dict(m) for m in items])
        elif items:
            header = [h for h, _ in spec.columns]
            print(table(header, [[cell(m) for _, cell in spec.columns] for m in items]))
        else:
            print(f"no {spec.name}")
        return 0

    return run


def _get(spec: _Collection) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with connect(args) as client:
            message = spec.get(client, resource_name(spec.name, args.name))
        data = message_dict(message)
        if json_mode(args):
            print_json(data)
        else:
            print("\n".join(_lines(data)))
        return 0

    return run


def _cancel_job(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.cancel_training_job(resource_name("jobs", args.name))
    if json_mode(args):
        print_json(message_dict(job))
    else:
        print(f"{job.name}: {_job_state(job)}, eps spent {job.progress.epsilon_spent:.3f}")
    return 0


def _delete(
    spec: _Collection, delete: Callable[[PrivsynthClient, str], None], what: str
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        name = resource_name(spec.name, args.name)
        with connect(args) as client:
            delete(client, name)
        if json_mode(args):
            print_json({"name": name, "deleted": True})
        else:
            print(f"deleted {name}: {what}")
        return 0

    return run


def _group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], spec: _Collection, help_text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    group = sub.add_parser(spec.name, help=help_text, description=help_text)
    actions = group.add_subparsers(dest=f"{spec.name}_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "list",
        help=f"list {spec.name}, newest first",
        description=f"List the {spec.name} you may see, newest first, fetching pages as "
        "needed. A table, or a JSON array with --json.",
    )
    if spec is not DATASETS:
        p.add_argument("--dataset", default="", help="only those of this dataset (datasets/<id>)")
    p.add_argument("--limit", type=int, default=None, help="show at most this many")
    p.add_argument(
        "--page-size", type=int32_arg, default=0, help="items per request (default: server's)"
    )
    p.set_defaults(func=_list(spec))
    p = actions.add_parser(
        "get",
        help=f"show one {spec.noun}",
        description=f"Show one {spec.noun} with every field (JSON with --json).",
    )
    p.add_argument("name", help=f"{spec.name}/<id> or the id")
    p.set_defaults(func=_get(spec))
    return actions


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``datasets``, ``jobs`` and ``models`` command groups."""
    actions = _group(sub, DATASETS, "find, inspect and delete datasets")
    p = actions.add_parser(
        "delete",
        help="delete a dataset's scrubbed text",
        description="Delete a dataset's scrubbed records. Its budget, ledger and audit trail "
        "stay, and so do models trained on it (delete those with `models delete`).",
    )
    p.add_argument("name", help="datasets/<id> or the id")
    p.set_defaults(
        func=_delete(
            DATASETS, lambda c, n: c.delete_dataset(n), "records deleted; ledger and audit stay"
        )
    )

    actions = _group(sub, JOBS, "find, inspect and cancel training jobs")
    p = actions.add_parser(
        "cancel",
        help="stop a training job",
        description="Ask a queued or running job to stop. A queued job releases its "
        "reservation; a running one is charged what it consumed so far.",
    )
    p.add_argument("name", help="jobs/<id> or the id")
    p.set_defaults(func=_cancel_job)

    actions = _group(sub, MODELS, "find, inspect and delete models")
    p = actions.add_parser(
        "delete",
        help="delete a model's weights",
        description="Delete a model's weights. Its card, ledger entries and audit trail stay; "
        "the epsilon it spent is not refunded. A model still training: cancel its job first.",
    )
    p.add_argument("name", help="models/<id> or the id")
    p.set_defaults(
        func=_delete(MODELS, lambda c, n: c.delete_model(n), "weights deleted; card stays")
    )
