"""Dataset upload: validate, scrub in batches, store the scrubbed shard, record the dataset.

Raw text exists only in memory while a batch is scrubbed; only scrubbed text is written. An
upload is all-or-nothing: a bad record aborts it with an error naming the record's position
(never its content) and nothing is stored.

Keyed strategies (``hash``, ``pseudonym``) use the dataset's own key, derived here from the
server's master secret and the dataset id
(:func:`~privsynth.server.scrubbing.strategies.dataset_key`), handed to the scrubber with every
batch and dropped when the upload ends: the key is never written to the database, the shard or the
report.

E-mail: an upload whose ``record_format`` is ``message/rfc822`` (``privsynth upload`` of an
``.eml`` or ``.mbox`` file) sends one message per record, in the compact form of
:func:`privsynth.client.mailfiles.compact_record`. **A stored record's text is then the scrubbed
Subject and body text** of its message (an empty line between them); the message's mailboxes are
not stored, they only feed its deny list (:mod:`privsynth.server.scrubbing.deny_list`), which
replaces their names and addresses wherever they recur in that Subject and body.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from privsynth.client.printing import breaks_line
from privsynth.server.config import Settings
from privsynth.server.db import DatasetRow, lock_until_commit, new_id, utcnow
from privsynth.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    Overloaded,
    QuotaExceeded,
    Reason,
    Unavailable,
)
from privsynth.server.privacy.caps import check_delta_cap, check_epsilon_cap
from privsynth.server.queue_limits import refuse_when_created_too_often
from privsynth.server.request_ids import earlier_resource, request_digest
from privsynth.server.runtime import Runtime
from privsynth.server.scrubbing.deny_list import DenyList
from privsynth.server.scrubbing.mail import RECORD_FORMAT as MAIL_RECORDS
from privsynth.server.scrubbing.mail import mail_record
from privsynth.server.scrubbing.pipeline import ParallelScrubber
from privsynth.server.scrubbing.pool import ScrubPoolClosed, WorkerLost
from privsynth.server.scrubbing.scrubber import Scrubber, ScrubCancelled
from privsynth.server.scrubbing.strategies import Replacer, dataset_key
from privsynth.server.scrubbing.tenant_storage import check_bytes, check_room, usage
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

__all__ = [
    "DatasetSpec",
    "IncomingRecord",
    "default_delta",
    "ingest",
    "scrub_key",
    "shard_in_use",
]

MAX_LABEL_CHARS = 100
MAX_USER_ID_CHARS = 200
#: Entity types that refuse a label (:func:`_refuse_identifying_labels`).
IDENTIFIER_TYPES = frozenset(
    {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS"}
)
#: Accepted ``record_format`` values: plain text ("" means text) or one e-mail message a record.
RECORD_FORMATS = ("", "text", MAIL_RECORDS)


def default_delta(n: int) -> float:
    """Default δ cap: ``min(1e-5, 1/(10 n))`` for ``n`` privacy units.

    δ bounds the probability that the ε guarantee fails outright; at δ ≥ 1/n a mechanism that
    publishes one random record in the clear would qualify, so δ must sit well below 1/n.
    """
    return min(1e-5, 1.0 / (10.0 * max(n, 1)))


@dataclass(frozen=True)
class DatasetSpec:
    """Upload metadata."""

    display_name: str
    epsilon_cap: float | None = None
    delta: float | None = None
    tenant: str = "default"
    request_id: str | None = None
    """The caller's id for this upload (AIP-155): a retry returns the first upload's dataset."""
    record_format: str = ""
    """What a record is: text ("" or "text") or one e-mail message ("message/rfc822")."""

    def digest(self) -> str:
        """A digest of the metadata, to tell a retried upload from a reused request id."""
        meta: dict[str, object] = {
            "display_name": self.display_name,
            "epsilon_cap": self.epsilon_cap,
            "delta": self.delta,
        }
        if self.record_format not in ("", "text"):  # text uploads keep their earlier digests
            meta["record_format"] = self.record_format
        return request_digest(meta)


class DuplicateUpload(Exception):
    """A retried upload finished second: ``dataset`` is the one the first attempt stored."""

    def __init__(self, dataset: DatasetRow) -> None:
        super().__init__("upload retried with the same request_id")
        self.dataset = dataset


def earlier_upload(runtime: Runtime, spec: DatasetSpec) -> DatasetRow | None:
    """The dataset an earlier upload with ``spec.request_id`` created, if any.

    Raises:
        InvalidArgument: The id was used for an upload with other metadata.
    """
    if spec.request_id is None:
        return None
    return earlier_resource(
        runtime.db,
        DatasetRow,
        tenant=spec.tenant,
        request_id=spec.request_id,
        digest=spec.digest(),
    )


@dataclass(frozen=True)
class IncomingRecord:
    """A record as received: raw bytes that must be UTF-8."""

    text: bytes
    label: str = ""
    user_id: str = ""


def _validate_spec(spec: DatasetSpec) -> None:
    if len(spec.display_name) > 200:
        raise InvalidArgument("display_name is over 200 characters", field="display_name")
    if _has_control(spec.display_name):  # listed to auditors of every tenant, in terminals
        raise InvalidArgument(
            "display_name must not hold control characters (newline, tab, ESC, NUL)",
            field="display_name",
        )
    if spec.epsilon_cap is not None:
        check_epsilon_cap(spec.epsilon_cap)
    if spec.delta is not None:
        check_delta_cap(spec.delta, 1)  # (0, 1) now; (0, 1/n) once the records are counted
    if spec.record_format not in RECORD_FORMATS:
        raise InvalidArgument(
            f"record_format must be one of {', '.join(repr(f) for f in RECORD_FORMATS)}",
            field="record_format",
        )


def _decode(i: int, rec: IncomingRecord, max_bytes: int) -> str:
    if len(rec.text) > max_bytes:
        raise InvalidArgument(
            f"record {i}: text is {len(rec.text)} bytes, over the limit of {max_bytes}",
            field=f"records[{i}].text",
            reason=Reason.RECORD_INVALID,
        )
    try:
        text = rec.text.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(
            f"record {i}: text is not valid UTF-8",
            field=f"records[{i}].text",
            reason=Reason.RECORD_INVALID,
        ) from None
    if not text.strip():
        raise InvalidArgument(
            f"record {i}: text is empty", field=f"records[{i}].text", reason=Reason.RECORD_INVALID
        )
    if len(rec.label) > MAX_LABEL_CHARS or _has_control(rec.label):
        raise InvalidArgument(
            f"record {i}: label must be one line of at most {MAX_LABEL_CHARS} characters "
            "without control characters",
            field=f"records[{i}].label",
            reason=Reason.RECORD_INVALID,
        )
    if rec.label and not rec.label.strip():
        raise InvalidArgument(
            f"record {i}: label is only whitespace; leave it empty for an unlabelled record",
            field=f"records[{i}].label",
            reason=Reason.RECORD_INVALID,
        )
    if len(rec.user_id) > MAX_USER_ID_CHARS:
        raise InvalidArgument(
            f"record {i}: user_id is over {MAX_USER_ID_CHARS} characters",
            field=f"records[{i}].user_id",
            reason=Reason.RECORD_INVALID,
        )
    return text


def _has_control(value: str) -> bool:
    """True if ``value`` holds a character that breaks a printed line (:func:`breaks_line`)."""
    return any(breaks_line(c) for c in value)


def _refuse_identifying_labels(
    scrubber: Scrubber | ParallelScrubber,
    first_seen: dict[str, int],
    *,
    key: bytes | None,
    cancel: threading.Event | None,
) -> None:
    """Refuse the upload if a label holds a structured identifier.

    Labels are not scrubbed: they are category names, released with a model (its card's label
    mix, every sampled record's label), and a scrubbed label would silently merge with
    others. So a label the analyzer reads as an e-mail address, a phone or card number, an
    SSN, an IBAN or an IP address is refused, naming the record and the type, never the value.
    A label of digits alone is an opaque code, not refused as a phone or card number. Names
    and places are not checked: "Paris" or "Jordan" is a fair topic. What the analyzer finds
    follows the scrub policy: a type the policy leaves out is not refused either.

    Args:
        scrubber: The upload's scrubber (its analyzer and worker pool).
        first_seen: Each label not checked yet, with the first record that carries it.
        key: The dataset's key for keyed strategies.
        cancel: The upload's cancel event.

    Raises:
        InvalidArgument: On field ``records[i].label`` of the first such record.
    """
    labels = list(first_seen)
    results = scrubber.scrub_batch(labels, key=key, cancel=cancel)
    for label, res in zip(labels, results, strict=True):
        refused = IDENTIFIER_TYPES
        if label.isdigit():  # an opaque code ("40512237"), however phone- or card-like
            refused = refused - {"PHONE_NUMBER", "CREDIT_CARD"}
        found = sorted(refused.intersection(res.entity_counts))
        if found:
            i = first_seen[label]
            raise InvalidArgument(
                f"record {i}: the label looks like personal data ({', '.join(found)}); labels "
                "are released as category names and are not scrubbed",
                field=f"records[{i}].label",
                reason=Reason.RECORD_INVALID,
            )


def scrub_key(runtime: Runtime, dataset_id: str) -> bytes | None:
    """The dataset's key for keyed strategies, or None when the policy needs none.

    Raises:
        FailedPrecondition: The policy is keyed but no master secret is configured (the
            settings refuse that at start-up; this guards runtimes built another way).
    """
    if not runtime.scrubber.policy.needs_key:
        return None
    secret = runtime.settings.scrub_secret.get_secret_value()
    if not secret:
        raise FailedPrecondition(
            "the scrub policy uses 'hash' or 'pseudonym' but the server has no master "
            "secret: set PRIVSYNTH_SCRUB_SECRET or PRIVSYNTH_SCRUB_SECRET_FILE",
            reason=Reason.SCRUB_SECRET_MISSING,
        )
    return dataset_key(secret.encode("utf-8"), dataset_id)


#: Characters of raw text an upload gathers before it hands them to the scrubber.
FLUSH_CHARS = 4 * 1024 * 1024


def ingest(
    runtime: Runtime,
    spec: DatasetSpec,
    records: Iterable[IncomingRecord],
    *,
    cancel: threading.Event | None = None,
) -> DatasetRow:
    """Scrub and store an uploaded corpus.

    Args:
        runtime: Server state (scrubber, store, database, metrics).
        spec: Name and optional budget cap.
        records: Records in upload order.
        cancel: Set when the caller has gone (cancelled, past its deadline): scrubbing stops
            within a fraction of a second, its queued work is dropped and nothing is stored.

    Returns:
        The stored dataset.

    Raises:
        InvalidArgument: Bad metadata, a bad record (by position), or an empty corpus.
        FailedPrecondition: Keyed strategies without a master secret.
        ScrubCancelled: ``cancel`` was set.
        Unavailable: The scrub workers shut down (the server is stopping).
    """
    runtime.require_ready()
    _validate_spec(spec)
    dataset_id = new_id()
    key = scrub_key(runtime, dataset_id)
    settings = runtime.settings
    scrubber = runtime.scrubber
    metrics = runtime.metrics
    totals: Counter[str] = Counter()
    strategies: Counter[str] = Counter()
    residual: Counter[str] = Counter()
    with_pii = 0
    labelled = 0
    anonymous = 0
    users: set[str] = set()
    pending: list[tuple[str, str, str, DenyList | None]] = []
    checked_labels: set[str] = set()
    new_labels: dict[str, int] = {}  # label -> first record, until flush() checks it
    pending_chars = 0
    mail = spec.record_format == MAIL_RECORDS
    replacer = Replacer(scrubber.policy, key) if mail else None

    def flush() -> None:
        nonlocal with_pii, pending_chars
        if not pending:
            return
        started = time.perf_counter()
        try:
            if new_labels:
                _refuse_identifying_labels(scrubber, new_labels, key=key, cancel=cancel)
                checked_labels.update(new_labels)
                new_labels.clear()
            results = scrubber.scrub_batch(
                [text for text, _, _, _ in pending], key=key, cancel=cancel
            )
        except ScrubPoolClosed:
            raise Unavailable("the server is shutting down: retry the upload") from None
        except WorkerLost:
            raise Unavailable(
                "a scrub worker stopped: retry the upload", reason=Reason.SCRUB_WORKER_LOST
            ) from None
        metrics.scrub_seconds.observe(time.perf_counter() - started)
        for (_, label, user, deny), found in zip(pending, results, strict=True):
            _check_not_cancelled(cancel)  # a flush of 4 MB of mail takes a while
            res = deny.apply(found, replacer) if deny and replacer else found
            if res.entity_counts:
                with_pii += 1
                totals.update(res.entity_counts)
                strategies.update(res.strategy_counts)
            residual.update(res.residual_counts)
            row = {"text": res.text, "label": label or None, "user": user or None}
            shard.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        if shard.size > settings.max_dataset_bytes:
            raise InvalidArgument(
                f"dataset is over {settings.max_dataset_bytes} bytes of scrubbed text",
                field="records",
                reason=Reason.DATASET_TOO_LARGE,
            )
        check_bytes(kept, adding=shard.size, max_bytes=settings.max_stored_bytes_per_tenant)
        metrics.records_scrubbed.inc(len(pending))
        pending.clear()
        pending_chars = 0

    # A tenant whose storage share (or hourly uploads) is full is refused before anything is
    # scrubbed.
    with runtime.db.session() as s:  # commits the sizes it measured for datasets before 0012
        kept = usage(s, runtime.store, spec.tenant)
    with runtime.db.session() as s:
        _check_upload_rate(s, spec.tenant, settings)
    check_room(kept, adding=0, **_share(settings))
    # The scrubbed shard goes to disk as it is scrubbed: an upload holds one flush in memory,
    # not its whole corpus (1 GiB each, with a dozen uploads open at once, was an OOM kill).
    shard = runtime.store.stage("shards", suffix=".jsonl")
    with shard:  # removed unless committed
        count = 0
        for i, rec in enumerate(records):
            _check_not_cancelled(cancel)
            if count >= settings.max_records:
                raise InvalidArgument(
                    f"dataset has more than {settings.max_records} records",
                    field="records",
                    reason=Reason.DATASET_TOO_LARGE,
                )
            text = _decode(i, rec, settings.max_record_bytes)
            deny = None
            if mail:
                text, deny = mail_record(text)
                if not text.strip():
                    raise InvalidArgument(
                        f"record {i}: the message has no Subject or body text",
                        field=f"records[{i}].text",
                    )
            user = ""
            if rec.user_id:
                user = hmac.new(runtime.user_key, rec.user_id.encode(), hashlib.sha256).hexdigest()
                users.add(user)
            else:
                anonymous += 1
            labelled += bool(rec.label)
            if rec.label and rec.label not in checked_labels and rec.label not in new_labels:
                new_labels[rec.label] = i
            pending.append((text, rec.label, user, deny))
            pending_chars += len(text)
            count += 1
            # Large enough that every scrub worker gets chunks of every flush; bounded in
            # characters too, so records of 64 KB are not gathered 256 at a time.
            if (
                len(pending) >= settings.scrub_batch_size * max(1, settings.scrub_workers) * 2
                or pending_chars >= FLUSH_CHARS
            ):
                flush()
        flush()
        if count == 0:
            raise InvalidArgument(
                "the dataset is empty: upload at least one record",
                field="records",
                reason=Reason.DATASET_EMPTY,
            )
        if spec.delta is not None:
            check_delta_cap(spec.delta, count)  # as UpdateBudgetCap: before anything is stored

        units = len(users) + anonymous if users else count
        _check_not_cancelled(cancel)
        for entity, n in totals.items():
            metrics.pii_entities.labels(entity_type=entity).inc(n)
        path, digest = shard.commit()
        size = shard.size
    report = {
        "records_scrubbed": count,
        "records_with_pii": with_pii,
        "entity_counts": dict(sorted(totals.items())),
        "analyzer": scrubber.description,
        "strategy": scrubber.strategy,
        "strategy_counts": dict(sorted(strategies.items())),
        # Structured identifiers a second, pattern-only pass still finds in the output.
        "residual_count": sum(residual.values()),
        "residual_counts": dict(sorted(residual.items())),
    }
    row = DatasetRow(
        id=dataset_id,
        display_name=spec.display_name,
        created_at=utcnow(),
        record_count=count,
        labelled_count=labelled,
        user_count=len(users),
        # Naming any user makes the user the unit: training then keeps one record per user.
        privacy_unit="user" if users else "record",
        epsilon_cap=spec.epsilon_cap or settings.default_epsilon_cap,
        delta=spec.delta if spec.delta is not None else default_delta(units),
        shard_path=path,
        content_sha256=digest,
        size_bytes=size,
        scrub_report=report,
        tenant=spec.tenant,
        request_id=spec.request_id,
        request_hash=spec.digest() if spec.request_id else None,
    )
    try:
        _check_not_cancelled(cancel)  # the client's end can reach us after its last record
        with runtime.db.session() as s:
            # Under the tenant's lock, counting the uploads that committed meanwhile.
            lock_until_commit(s, f"storage/{spec.tenant}")
            _check_upload_rate(s, spec.tenant, settings)
            check_room(usage(s, runtime.store, spec.tenant), adding=size, **_share(settings))
            s.add(row)
    except IntegrityError:
        # The same upload, retried while the first was still scrubbing: the first one stored
        # its dataset (the unique request id). Drop this copy's shard unless a dataset names
        # it (shards are content-addressed: the first's may be the same file).
        _drop_unless_named(runtime, path)
        earlier = earlier_upload(runtime, spec)
        if earlier is None:
            raise
        raise DuplicateUpload(earlier) from None
    except (QuotaExceeded, Overloaded):
        # Refused by the share or the hourly limit at the last check: a retry whose first
        # attempt stored its dataset meanwhile (and so filled the share) still gets that one.
        _drop_unless_named(runtime, path)
        earlier = earlier_upload(runtime, spec)
        if earlier is None:
            raise
        raise DuplicateUpload(earlier) from None
    except BaseException:
        # Cancelled, or the database refused (disk full): best effort, the error stands.
        with contextlib.suppress(Exception):
            _drop_unless_named(runtime, path)
        raise
    return row


def _check_upload_rate(session: Session, tenant: str, settings: Settings) -> None:
    """Refuse a tenant that uploaded its hourly number of datasets (deleted ones count)."""
    refuse_when_created_too_often(
        session,
        DatasetRow,
        tenant=tenant,
        limit=settings.max_creations_per_tenant_per_hour,
        what="datasets",
        subject="datasets/created_per_hour",
    )


def _share(settings: Settings) -> dict[str, int]:
    """The tenant storage share's bounds, as :func:`check_room` takes them."""
    return {
        "max_datasets": settings.max_datasets_per_tenant,
        "max_bytes": settings.max_stored_bytes_per_tenant,
    }


def _check_not_cancelled(cancel: threading.Event | None) -> None:
    """Raise :class:`ScrubCancelled` once the caller has gone.

    Checked before each record, and again after the last: grpcio can end a cancelled request
    stream as if the client had finished it and tell the handler only a moment later, so the
    check runs before the shard is kept and before the row is stored too.
    """
    if cancel is not None and cancel.is_set():
        raise ScrubCancelled("the upload was cancelled")


def shard_in_use(session: Session, path: str, *, besides: str | None = None) -> bool:
    """Whether a live dataset (other than ``besides``) reads the shard at ``path``.

    Shards are content-addressed: two uploads of the same scrubbed text, by one tenant or
    two, share one file, which may go only when no live dataset names it.
    """
    query = select(DatasetRow.id).where(
        DatasetRow.shard_path == path, DatasetRow.deleted_at.is_(None)
    )
    if besides is not None:
        query = query.where(DatasetRow.id != besides)
    return session.scalar(query.limit(1)) is not None


def _drop_unless_named(runtime: Runtime, path: str) -> None:
    """Delete the shard at ``path`` unless a live dataset reads it."""
    with runtime.db.session() as s:
        in_use = shard_in_use(s, path)
    if not in_use:
        runtime.store.delete(path)
