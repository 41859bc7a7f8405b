"""Server configuration from ``PRIVSYNTH_*`` environment variables.

One settings object, built once at start-up and passed down; nothing else reads the
environment. The Helm chart's ConfigMap sets the same names.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "SettingsError", "describe_settings_error"]


class SettingsError(ValueError):
    """A setting this process cannot run with (checked at start-up, before any port opens)."""


def describe_settings_error(exc: Exception) -> str:
    """One line per problem, naming the setting, for an operator at start-up.

    pydantic's own text repeats every input value, which would print secrets (an admin token,
    a database URL with its password) into a terminal or a log; only the messages and the
    names of the settings they concern are kept.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for error in errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error.get("loc", ()))
        name = f"PRIVSYNTH_{where.upper()}: " if where else ""
        lines.append(f"{name}{error.get('msg', 'invalid')}")
    return "; ".join(lines) or str(exc)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Settings(BaseSettings):
    """Everything the server can be told at start-up.

    Attributes:
        data_dir: Artifacts (scrubbed shards, models) and the default SQLite database.
        model_dir: Directory of local Hugging Face model directories the operator allows as
            DP-LoRA bases; each ``<model_dir>/<name>`` becomes preset ``hf:<name>``.
        database_url: SQLAlchemy URL; defaults to ``sqlite:///{data_dir}/privsynth.db``.
        host: Interface the gRPC server binds.
        grpc_port: gRPC port; 0 picks a free port (tests).
        metrics_port: Prometheus HTTP port; 0 picks a free port, -1 disables it.
        log_level: Python logging level name.
        log_format: ``json`` (default): one JSON object per line with the request id, for a
            log pipeline; ``text``: classic lines for a terminal (:mod:`privsynth.server.logs`).
        shutdown_grace_seconds: How long in-flight RPCs may finish after SIGTERM.
        max_workers: gRPC thread-pool size.
        max_streams: privsynth streaming calls (UploadDataset, Generate, WatchTrainingJob)
            and slow scrub calls (AnalyzeText, ScrubText) open at once; each holds a thread of
            the pool. 0 (default) leaves a quarter of ``max_workers`` (at least 2 threads) to
            unary calls. Over it: RESOURCE_EXHAUSTED.
        max_streams_per_caller: Of those, what one authenticated caller may hold. 0 (default):
            half of ``max_streams``. A caller also holds at most half of the Generate, watch
            and scrub places; ``max_streams`` or more lifts every share (a gateway that calls
            for many users).
        max_unary_calls_per_caller: Other unary calls (listings, gets, deletes, ...) one
            authenticated caller may have running at once; past it they are refused with
            RESOURCE_EXHAUSTED (``concurrent_calls/unary_per_caller``, RetryInfo) as they reach
            a thread. 0 (default): half of ``max_workers``. Lifted, like the other shares,
            when ``max_streams_per_caller`` is ``max_streams`` or more.
        max_concurrent_rpcs: Calls in flight (queued for a thread or running) the gRPC server
            takes; beyond it grpcio refuses at once with RESOURCE_EXHAUSTED, before a thread
            is spent. Bounds the queue a flood builds. 0: no bound.
        max_watch_streams: WatchTrainingJob calls open at once (they may idle for hours).
        stream_idle_seconds: How long a stream may wait on its client (for an upload's next
            message, or for the client to read what was sent) before the server ends it with
            DEADLINE_EXCEEDED; 0 turns the limit off. A watch waiting on its job is not
            waiting on its client (:mod:`privsynth.server.api.idle`).
        max_connections: Connections open at once on the gRPC port; more are closed as they
            are accepted. 0 (default): half the process's open-file limit, at most 10,000
            (:mod:`privsynth.server.api.connections`).
        connection_idle_seconds: A connection with no call for this long is closed (the
            client reconnects on its next call); 0 keeps idle connections open.
        max_generate_calls: Generate calls running at once (each keeps a core busy); more
            are refused at once with RESOURCE_EXHAUSTED and a RetryInfo.
        max_scrub_calls: AnalyzeText and ScrubText calls running at once; more are refused
            the same way.
        training_workers: Training jobs run at once in this process. 0 makes an API-only
            replica: it accepts jobs (reserving budget) but trains none; a replica with
            workers takes them up within a quarter of ``job_lease_s``.
        worker_id: This process's name on the jobs it runs (default ``<host name>:<pid>``;
            on Kubernetes the pod name and, in a container, pid 1, so a restarted container
            keeps its name). Must differ between live processes: a process that starts under
            a name takes over every job left RUNNING under it at once.
        job_lease_s: A replica with workers renews a lease on each job it runs every quarter
            of this; a RUNNING job whose lease is older was cut off (its replica died) and
            another replica resumes it from its checkpoint, or charges its reservation.
        max_queued_evaluations_per_tenant: QUEUED evaluations (quality reports) one tenant may
            have; beyond it EvaluateModel is RESOURCE_EXHAUSTED (``evaluations/queued_per_tenant``,
            RetryInfo 30 s). Thirty queued 5,000-sample reports were twelve hours of the one
            evaluation worker, ahead of every other tenant's. 0: no limit.
        max_queued_jobs_per_tenant: QUEUED training jobs one tenant may have (all replicas,
            distributed jobs awaiting their launch included); CreateTrainingJob beyond it is
            RESOURCE_EXHAUSTED (QuotaFailure ``jobs/queued_per_tenant``, RetryInfo) and reserves
            nothing. 0: no limit.
        max_running_jobs_per_tenant: RUNNING training jobs one tenant may have at once (all
            replicas); workers leave its further jobs QUEUED meanwhile and take other tenants'
            jobs. 0: no limit.
        max_job_seconds: Wall-clock seconds a job may train (summed over resumes); a run past
            it stops as a cancel does, is charged the ε it consumed and ends FAILED with
            "stopped: exceeded the maximum job duration of N s". 0: no limit.
        max_audit_seconds: Wall-clock seconds an AuditPrivacy call may train; past it the
            audit stops as a cancel does (a dataset's audit is charged what it spent) and the
            call ends DEADLINE_EXCEEDED (``TIME_LIMIT_EXCEEDED``). The server runs one audit at
            a time, and one at the per-field maxima held that place 2.5 hours. 0: no limit.
        torch_threads: Intra-op threads for torch.
        sample_batch_size: Records a sampling request decodes at once. Larger batches raise
            throughput on a long request (48 rows decoded 240 records 1.3x faster than 16 on
            two cores, benchmarks/sampling_speed.py) but a streamed reply's first record
            waits for its whole first batch (about 19 s instead of 7 there), and memory grows
            with it.
        checkpoint_every_s: A running job saves a resumable checkpoint (weights, optimizer,
            accountant and RNG state) into its artifact dir at least this often; a job left
            RUNNING by a crash or a shutdown resumes from it on restart instead of failing.
        checkpoint_every_steps: Also save every this many noisy steps (0: by time only).
            Checkpointing is off when both intervals are 0.
        max_physical_batch_size: Largest batch put through the model at once; larger Poisson
            batches are split (Opacus' BatchMemoryManager) without changing ε. 0: no limit.
        default_epsilon_cap: Budget cap of a dataset uploaded without one.
        max_record_bytes: Largest accepted record, in UTF-8 bytes.
        max_records: Largest accepted dataset, in records.
        max_dataset_bytes: Largest accepted dataset, in bytes of scrubbed text. An upload's
            shard is staged on disk as it is scrubbed, so this bounds the disk one upload takes
            (and the memory a training job reading it takes) where ``max_records`` x
            ``max_record_bytes`` (64 GB) does not.
        max_datasets_per_tenant: Live datasets one tenant may keep; its next upload is refused
            before anything is scrubbed (RESOURCE_EXHAUSTED ``STORAGE_QUOTA_EXCEEDED``, subject
            ``storage/datasets_per_tenant``) until it deletes one. 0: no limit.
        max_stored_bytes_per_tenant: Bytes of scrubbed shards one tenant may keep (default
            4 GiB, below the chart's 10 Gi volume); an upload that would pass it is refused as
            soon as it does (subject ``storage/bytes_per_tenant``) and nothing of it is stored.
            One member uploading 1 GiB datasets in a loop used to fill the volume every tenant
            shares (:mod:`privsynth.server.scrubbing.tenant_storage`). 0: no limit.
        max_creations_per_tenant_per_hour: Datasets one tenant may upload in an hour, and as
            many training jobs and as many evaluations (each kind counted on its own, deleted
            and cancelled ones included: their rows and audit entries stay). Past it the call
            is RESOURCE_EXHAUSTED ``CREATION_RATE_EXCEEDED`` with a RetryInfo (subject
            ``datasets/created_per_hour``, ``jobs/…`` or ``evaluations/…``). 0: no limit.
        scrub_batch_size: Records per Presidio batch.
        scrub_workers: Worker processes scrubbing uploads (each holds its own spaCy pipeline,
            ~370-500 MB); 0 scrubs in the server process. With two or more, one is kept for
            interactive ScrubText/AnalyzeText calls, so the default 3 gives uploads two workers
            (both cores of the reference machine) and ad hoc calls never wait behind an upload.
        scrub_worker_max_rss_mb: A scrub worker holding more than this many MiB after a task
            is replaced by a fresh one (0: never).
        scrub_policy: Replacement strategies per entity type (YAML); defaults to the packaged
            ``conf/scrub.yaml`` (typed placeholders).
        nlp_config: Presidio NLP engine YAML; defaults to the packaged ``conf/nlp.yaml``.
        scrub_secret: Master secret (at least 16 bytes) for the ``hash`` and ``pseudonym``
            scrub strategies: each dataset's key is HMAC-SHA256(secret, dataset id), derived
            in memory and never stored. Required, at start-up, when ``scrub_policy`` uses
            either strategy; keep it out of the data dir (a Kubernetes Secret).
        scrub_secret_file: File holding ``scrub_secret`` (a mounted secret); read at
            start-up, overrides ``scrub_secret``.
        user_id_key: Secret for hashing user ids; generated into the data dir when unset.
        auth_tokens_file: YAML or JSON file mapping bearer tokens (or their SHA-256) to
            identities with roles (format in :mod:`privsynth.server.api.auth`). Unset (the default)
            runs the server in open mode: tokenless callers are members of tenant ``default``.
        admin_token: Legacy bearer token of one identity ``admin`` with role admin (budget-cap
            changes); works in open mode and beside a tokens file. Empty adds no admin.
        admin_token_file: File holding the admin token (a mounted Kubernetes secret); read at
            start-up, overrides ``admin_token``.
        tls_cert_file: PEM certificate chain of the server; with ``tls_key_file`` the gRPC port
            speaks TLS only.
        tls_key_file: PEM private key of ``tls_cert_file``.
        tls_client_ca_file: PEM CA bundle; when set, clients must present a certificate it
            signed (mutual TLS).
        health_port: A second, plaintext gRPC port serving only ``grpc.health.v1`` (no data, no
            other service), for probes that cannot speak TLS (Kubernetes' native gRPC probes);
            -1 (default) opens none. Only useful beside TLS on ``grpc_port``.
        artifact_store_url: Object store prefix for artifacts (scrubbed shards, models), e.g.
            ``s3://bucket/privsynth`` (needs ``privsynth[s3]``), so that replicas share them
            without a ReadWriteMany volume; empty (default) keeps them under ``data_dir``.
            Training checkpoints stay under ``data_dir`` either way.
        artifact_store_options: fsspec filesystem options as JSON, e.g.
            ``{"endpoint_url": "http://minio:9000"}``; credentials come from the backend's own
            environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, workload identity).
        holdout_fraction: Share of a dataset's privacy units a training job holds out of
            training, to evaluate its model against (``privacy.holdout``), unless the request
            says otherwise; datasets too small for it train on every record and their models
            cannot be evaluated. 0 disables holdouts.
        evaluation_workers: Quality reports (EvaluateModel) computed at once in this process;
            0 makes a replica that accepts none.
        migrate_on_start: Upgrade the database schema at start-up (default). Turn it off where
            a separate step migrates before the servers start (the Helm chart's pre-install /
            pre-upgrade Job); the server then refuses to start on a schema that is not current.
        device: Where training jobs and sampling run: ``auto`` (default; CUDA when torch sees
            a GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. Asking for CUDA where there
            is none stops the server at start-up (:meth:`resolved_device`) instead of training
            on the CPU unnoticed. Distributed (torchrun) jobs train on the CPU regardless.
    """

    model_config = SettingsConfigDict(env_prefix="PRIVSYNTH_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9090, ge=-1, le=65535)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    max_workers: int = Field(default=16, ge=1)
    max_streams: int = Field(default=0, ge=0)
    max_streams_per_caller: int = Field(default=0, ge=0)
    max_unary_calls_per_caller: int = Field(default=0, ge=0)
    max_concurrent_rpcs: int = Field(default=1024, ge=0)
    max_watch_streams: int = Field(default=4, ge=1)
    stream_idle_seconds: float = Field(default=120.0, ge=0)  # idle.DEFAULT_STREAM_IDLE_SECONDS
    max_connections: int = Field(default=0, ge=0)
    connection_idle_seconds: float = Field(default=300.0, ge=0)  # connections.DEFAULT_...
    max_generate_calls: int = Field(default=2, ge=1)  # admission.DEFAULT_MAX_GENERATE_CALLS
    max_scrub_calls: int = Field(default=8, ge=1)  # admission.DEFAULT_MAX_SCRUB_CALLS
    training_workers: int = Field(default=1, ge=0)
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=128)
    job_lease_s: float = Field(default=60.0, gt=0)
    # -- per-tenant job limits and job duration (issue 12) --
    max_queued_jobs_per_tenant: int = Field(default=8, ge=0)
    max_queued_evaluations_per_tenant: int = Field(default=4, ge=0)
    max_running_jobs_per_tenant: int = Field(default=1, ge=0)
    max_job_seconds: float = Field(default=24 * 3600.0, ge=0)
    max_audit_seconds: float = Field(default=1800.0, ge=0)
    torch_threads: int = Field(default=2, ge=1)
    sample_batch_size: int = Field(default=16, ge=1, le=256)
    # -- training checkpoints and memory (issue 5) --
    checkpoint_every_s: float = Field(default=60.0, ge=0)
    checkpoint_every_steps: int = Field(default=0, ge=0)
    max_physical_batch_size: int = Field(default=0, ge=0)
    default_epsilon_cap: float = Field(default=10.0, gt=0, le=1000)  # caps.MAX_EPSILON_CAP
    max_record_bytes: int = Field(default=64 * 1024, ge=1)
    max_records: int = Field(default=1_000_000, ge=1)
    max_dataset_bytes: int = Field(default=1024**3, ge=1)
    max_datasets_per_tenant: int = Field(default=1000, ge=0)
    max_creations_per_tenant_per_hour: int = Field(default=200, ge=0)
    max_stored_bytes_per_tenant: int = Field(default=4 * 1024**3, ge=0)
    scrub_batch_size: int = Field(default=64, ge=1)
    scrub_workers: int = Field(default=3, ge=0)
    scrub_worker_max_rss_mb: int = Field(default=1536, ge=0)
    scrub_policy: Path | None = None
    model_dir: Path | None = None
    nlp_config: Path | None = None
    # -- scrub master secret (issue 3) --
    scrub_secret: SecretStr = SecretStr("")
    scrub_secret_file: Path | None = None
    user_id_key: str = ""
    admin_token: str = ""
    admin_token_file: Path | None = None
    auth_tokens_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    health_port: int = Field(default=-1, ge=-1, le=65535)
    # -- deployment (issue 16): object store for artifacts, migrations run by the chart --
    artifact_store_url: str = ""
    artifact_store_options: dict[str, Any] = Field(default_factory=dict)
    migrate_on_start: bool = True
    # -- quality reports (issue 15) --
    holdout_fraction: float = Field(default=0.1, ge=0, le=0.5)  # holdout.MAX_FRACTION
    evaluation_workers: int = Field(default=1, ge=0)
    # -- GPU when present (issue 14) --
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")  # DEVICE_PATTERN

    def resolved_device(self) -> str:
        """The device :attr:`device` names here, e.g. ``cpu``, ``cuda`` or ``cuda:1``.

        Checked when a process that trains or samples starts (:class:`Runtime`), not when the
        settings are read: a migration Job or a CPU torchrun rank reading the same ConfigMap
        must not need a GPU.

        Raises:
            SettingsError: CUDA asked for, and torch sees none (or not that index).
        """
        from privsynth.models.device import DeviceUnavailableError, resolve_device

        try:
            return str(resolve_device(self.device))
        except DeviceUnavailableError as exc:
            raise SettingsError(
                f"PRIVSYNTH_DEVICE: {exc}. Set PRIVSYNTH_DEVICE=cpu (or auto), or run on a "
                "node with a GPU and a CUDA build of torch"
            ) from None

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both PRIVSYNTH_TLS_CERT_FILE and _KEY_FILE, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("PRIVSYNTH_TLS_CLIENT_CA_FILE (mutual TLS) needs a server certificate")
        return self

    @model_validator(mode="after")
    def _check_health_port(self) -> Settings:
        if self.health_port > 0 and self.health_port in (self.grpc_port, self.metrics_port):
            raise ValueError("PRIVSYNTH_HEALTH_PORT must differ from the gRPC and metrics ports")
        return self

    @model_validator(mode="after")
    def _check_model_dir(self) -> Settings:
        if self.model_dir is not None and not self.model_dir.is_dir():
            raise ValueError("PRIVSYNTH_MODEL_DIR must name an existing directory")
        return self

    @model_validator(mode="after")
    def _read_admin_token(self) -> Settings:
        if self.admin_token_file is not None:
            self.admin_token = self.admin_token_file.read_text(encoding="utf-8").strip()
        return self

    @model_validator(mode="after")
    def _check_scrub_secret(self) -> Settings:
        if self.scrub_secret_file is not None:
            try:
                raw = self.scrub_secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"cannot read PRIVSYNTH_SCRUB_SECRET_FILE ({type(exc).__name__})"
                ) from None
            self.scrub_secret = SecretStr(raw)
        secret = self.scrub_secret.get_secret_value()
        if secret and len(secret.encode("utf-8")) < 16:
            raise ValueError("PRIVSYNTH_SCRUB_SECRET must be at least 16 bytes")
        from privsynth.server.scrubbing.strategies import load_policy

        policy = load_policy(self.scrub_policy)  # a bad policy raises StrategyConfigError
        if policy.needs_key and not secret:
            raise ValueError(
                f"the scrub policy {policy.source} uses 'hash' or 'pseudonym', which need a "
                "master secret: set PRIVSYNTH_SCRUB_SECRET or PRIVSYNTH_SCRUB_SECRET_FILE "
                "(e.g. 32 random bytes from a Kubernetes Secret)"
            )
        return self

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir.resolve() / 'privsynth.db'}"
        return self
