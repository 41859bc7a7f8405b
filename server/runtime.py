"""The long-lived objects one server process shares: settings, database, store, scrubber."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from privsynth.models.presets import register_local_bases
from privsynth.server.config import Settings
from privsynth.server.db import Database
from privsynth.server.errors import Reason, Unavailable
from privsynth.server.metrics import Metrics
from privsynth.server.scrubbing.pipeline import ParallelScrubber
from privsynth.server.scrubbing.scrubber import Scrubber
from privsynth.server.storage import ArtifactStore, open_artifact_store, private_dir

log = logging.getLogger(__name__)

__all__ = ["Runtime"]


def _user_id_key(settings: Settings) -> bytes:
    """The secret for hashing user ids: configured, or generated once into the data dir."""
    if settings.user_id_key:
        return settings.user_id_key.encode()
    path = Path(settings.data_dir) / "secrets" / "user_id.key"
    if not path.exists():
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _private_sqlite(url: str) -> None:
    """Create the SQLite file 0600 (and make an existing one, -wal and -shm 0600).

    SQLite creates its -wal and -shm files with the database file's permissions, so a
    private database file keeps them private too.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    db = Path(parsed.database)
    if not db.parent.exists():
        return
    os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")):
        if path.exists():
            os.chmod(path, 0o600)


def _scrubber(settings: Settings) -> Scrubber | ParallelScrubber:
    """The upload scrubber: worker processes so the whole pipeline uses every core."""
    if settings.scrub_workers > 0:
        return ParallelScrubber(
            workers=settings.scrub_workers,
            max_worker_rss=settings.scrub_worker_max_rss_mb * 1024 * 1024,
            nlp_config=settings.nlp_config,
            batch_size=settings.scrub_batch_size,
            policy=settings.scrub_policy,
            residual_check=True,
        )
    return Scrubber(
        nlp_config=settings.nlp_config,
        batch_size=settings.scrub_batch_size,
        policy=settings.scrub_policy,
        residual_check=True,
    )


@dataclass
class Runtime:
    """Shared state, built once at start-up and handed to servicers and workers."""

    settings: Settings
    db: Database
    store: ArtifactStore
    scrubber: Scrubber | ParallelScrubber
    metrics: Metrics
    user_key: bytes
    ready: threading.Event = field(default_factory=threading.Event)
    device: str = "cpu"
    """Where training jobs and sampling run (``settings.device`` resolved at start-up)."""

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        """Open the database (migrating it, unless another step does) and the artifact store.

        The data directory is made 0700 and the SQLite file 0600: they hold scrubbed corpora,
        models and the ledger.

        Raises:
            SettingsError: ``settings.device`` asks for CUDA where there is none (before
                anything is opened).
        """
        import torch
        from privsynth.models.device import describe_device

        device = settings.resolved_device()
        log.info("training and sampling on %s", describe_device(torch.device(device)))
        private_dir(settings.data_dir)
        _private_sqlite(settings.database_url)
        if settings.model_dir is not None:
            names = register_local_bases(settings.model_dir)
            log.info("local base models offered as presets: %s", ", ".join(names) or "none")
        db = Database(settings.database_url)
        if settings.migrate_on_start:
            db.migrate()
        else:
            db.require_current()  # a separate step (the chart's hook Job) migrates
        store = open_artifact_store(
            settings.data_dir / "artifacts",
            settings.artifact_store_url,
            settings.artifact_store_options,
        )
        log.info("artifacts in %s", store.location)
        metrics = Metrics()
        metrics.watch_jobs(db)
        return cls(
            settings=settings,
            db=db,
            store=store,
            scrubber=_scrubber(settings),
            metrics=metrics,
            user_key=_user_id_key(settings),
            device=device,
        )

    def close(self) -> None:
        """Stop scrub workers and release database connections."""
        if isinstance(self.scrubber, ParallelScrubber):
            self.scrubber.close()
        self.db.close()

    def require_ready(self) -> None:
        """Refuse work until the scrubber and model code are loaded.

        Raises:
            Unavailable: Still starting.
        """
        if not self.ready.is_set():
            raise Unavailable(
                "server is starting: models are still loading, retry shortly",
                reason=Reason.SERVER_STARTING,
            )
