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
from privsynth.server.errors import Unavailable
from privsynth.server.metrics import Metrics
from privsynth.server.scrub_pipeline import ParallelScrubber
from privsynth.server.scrubber import Scrubber
from privsynth.server.storage import ArtifactStore

log = logging.getLogger(__name__)

__all__ = ["Runtime"]


def _user_id_key(settings: Settings) -> bytes:
    """The secret for hashing user ids: configured, or generated once into the data dir."""
    if settings.user_id_key:
        return settings.user_id_key.encode()
    path = Path(settings.data_dir) / "secrets" / "user_id.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _scrubber(settings: Settings) -> Scrubber | ParallelScrubber:
    """The upload scrubber: worker processes so the whole pipeline uses every core."""
    if settings.scrub_workers > 0:
        return ParallelScrubber(
            workers=settings.scrub_workers,
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

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        """Open the database (migrating it) and the artifact store."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.model_dir is not None:
            names = register_local_bases(settings.model_dir)
            log.info("local base models offered as presets: %s", ", ".join(names) or "none")
        db = Database(settings.database_url)
        db.migrate()
        return cls(
            settings=settings,
            db=db,
            store=ArtifactStore(settings.data_dir / "artifacts"),
            scrubber=_scrubber(settings),
            metrics=Metrics(),
            user_key=_user_id_key(settings),
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
            raise Unavailable("server is starting: models are still loading, retry shortly")
