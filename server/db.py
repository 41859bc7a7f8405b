"""Metadata and ledger tables (SQLAlchemy 2) and the database connection.

The schema is owned by Alembic migrations in ``privsynth.server.migrations``; :func:`connect`
upgrades the database to head on start-up. SQLite (the embedded default) gets WAL mode, a busy
timeout and ``BEGIN IMMEDIATE`` transactions, so that a budget check and the reservation that
follows it cannot interleave with another writer's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from privsynth.models.label_prompt import MAX_LABEL_PROMPT
from privsynth.models.presets import MAX_PRESET_NAME
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

__all__ = [
    "AuditRow",
    "Base",
    "Database",
    "DatasetRow",
    "EvaluationRow",
    "JobRow",
    "LedgerRow",
    "ModelRow",
    "as_utc",
    "head_revision",
    "lock_until_commit",
    "new_id",
    "utcnow",
]


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time: SQLite returns naive datetimes, stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def new_id() -> str:
    """A random 16-hex-digit resource id."""
    return uuid.uuid4().hex[:16]


def lock_until_commit(session: Session, name: str) -> None:
    """Serialise the transactions that take the lock ``name`` (e.g. ``jobs/<tenant>``).

    A transaction-scoped advisory lock on PostgreSQL (replicas share it); on SQLite every
    write transaction is serialised already (``BEGIN IMMEDIATE``), so nothing is needed.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - (1 << 63)})


class Base(DeclarativeBase):
    """Declarative base of all tables."""


class DatasetRow(Base):
    """A scrubbed dataset. Its text lives in an artifact shard, never in the database."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    record_count: Mapped[int] = mapped_column(Integer)
    labelled_count: Mapped[int] = mapped_column(Integer)
    user_count: Mapped[int] = mapped_column(Integer)
    privacy_unit: Mapped[str] = mapped_column(String(16))
    epsilon_cap: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    shard_path: Mapped[str] = mapped_column(String(300))
    content_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """Bytes of the scrubbed shard, counted against the tenant's storage share (NULL for
    datasets stored before revision 0012; the quota reads their size from the store once)."""
    scrub_report: Mapped[dict[str, Any]] = mapped_column(JSON)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True, server_default="default")
    # The caller's id for the upload and a digest of its metadata: a retried upload returns
    # this dataset instead of storing a second one (revision 0008; see request_ids).
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_datasets_tenant_request_id", "tenant", "request_id", unique=True),)


class JobRow(Base):
    """A training job and its latest progress."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    model_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), index=True)
    target_epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    epochs: Mapped[int] = mapped_column(Integer)
    preset: Mapped[str] = mapped_column(String(MAX_PRESET_NAME))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    loss: Mapped[float] = mapped_column(Float, default=0.0)
    epsilon_spent: Mapped[float] = mapped_column(Float, default=0.0)
    elapsed_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error_message: Mapped[str] = mapped_column(Text, default="")
    # The DP-SGD event, fixed at reservation (None on jobs created before revision 0002).
    noise_multiplier: Mapped[float | None] = mapped_column(Float, nullable=True)
    sample_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    planned_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Noisy steps charged to the ledger when the job ended.
    steps_taken: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The dataset's tenant, copied so jobs can be listed per tenant without a join.
    tenant: Mapped[str] = mapped_column(String(64), index=True, server_default="default")
    # The label distribution's Gaussian release (σ over sensitivity; None: no DP release) and
    # the request behind it (mode, ε share, threshold, declared weights); revision 0005.
    label_noise_multiplier: Mapped[float | None] = mapped_column(Float, nullable=True)
    label_release: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The per-label token statistics' Gaussian release (σ; None: none), revision 0010.
    stats_noise_multiplier: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The process running the job and the last renewal of its lease (revision 0006); None on
    # jobs never run since, which a starting worker treats as cut off.
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # "worker" (a server replica's worker thread) or "torchrun" (privsynth.server.jobs.distributed
    # under the same ledger; replicas never take those up); revision 0007.
    runner: Mapped[str] = mapped_column(String(16), default="worker", server_default="worker")
    # The caller's id for the create and a digest of its parameters: a retried create returns
    # this job and reserves nothing twice (revision 0008; see request_ids).
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Share of privacy units held out of training for evaluation (privacy.holdout); None on
    # jobs created before revision 0009, which trained on every record.
    holdout_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The request template a label is written into (models.label_prompt); None: the model
    # family's default (every job before revision 0011).
    label_prompt: Mapped[str | None] = mapped_column(String(MAX_LABEL_PROMPT), nullable=True)

    __table_args__ = (Index("ix_jobs_tenant_request_id", "tenant", "request_id", unique=True),)


class ModelRow(Base):
    """A generator: TRAINING while its job runs, then READY (with weights) or FAILED."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    job_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    card: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    weights_path: Mapped[str] = mapped_column(String(300), default="")
    weights_sha256: Mapped[str] = mapped_column(String(64), default="")
    tenant: Mapped[str] = mapped_column(String(64), index=True, server_default="default")


class EvaluationRow(Base):
    """A quality-report job of a model (revision 0009); its report is a stored artifact."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(32), index=True)
    dataset_id: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    sample_count: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(32), default="", server_default="")
    stages_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stages_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The process running it and its last sign of life: a reader fails an evaluation whose
    # process stopped renewing (it is not resumed; running it again is cheap).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    report_path: Mapped[str] = mapped_column(String(300), default="", server_default="")
    report_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    actor: Mapped[str] = mapped_column(String(200), default="", server_default="")


class LedgerRow(Base):
    """One append-only privacy ledger entry (reserve, commit or release)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    job_id: Mapped[str] = mapped_column(String(32), default="")
    kind: Mapped[str] = mapped_column(String(16))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    # The job's DP-SGD event on reserve (planned steps) and commit (steps taken); None on
    # release entries and on entries written before revision 0002.
    noise_multiplier: Mapped[float | None] = mapped_column(Float, nullable=True)
    sample_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The job's label-distribution release (Gaussian, q = 1, one event); revision 0005.
    label_noise_multiplier: Mapped[float | None] = mapped_column(Float, nullable=True)
    stats_noise_multiplier: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditRow(Base):
    """One entry of the append-only, hash-chained audit log (``privsynth.server.privacy.audit``).

    The database refuses UPDATE and DELETE on this table (triggers from revision 0003); the
    hash chain makes any change made around that refusal detectable.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    job: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_MIGRATION_LOCK_KEY = 0x70726976  # "priv": the advisory lock id for migrations


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def head_revision() -> str:
    """The newest migration this release ships."""
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


class Database:
    """Engine plus session factory; ``session()`` is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(url, **kwargs)
        if is_sqlite:
            _sqlite_pragmas(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (the newest by default; tests pin older ones)."""
        from alembic import command

        cfg = _alembic_config()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas start together: serialise their migrations (transactional DDL makes
                # the second one see the first one's result and do nothing).
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def schema_revision(self) -> str | None:
        """The schema revision the database is at (None: never migrated)."""
        from alembic.migration import MigrationContext

        with self.engine.connect() as conn:
            revision: str | None = MigrationContext.configure(conn).get_current_revision()
            return revision

    def require_current(self) -> None:
        """Refuse a database whose schema is not this release's (when another step migrates).

        Raises:
            RuntimeError: The schema is older or newer than this code's newest migration.
        """
        current, head = self.schema_revision(), head_revision()
        if current != head:
            raise RuntimeError(
                f"database schema is at revision {current or 'none'}, this release needs "
                f"{head}: run `python -m privsynth.server.migrate` (the Helm chart's migration "
                "Job does) or set PRIVSYNTH_MIGRATE_ON_START=true"
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()
