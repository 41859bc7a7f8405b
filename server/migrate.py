r"""Upgrade the database schema, then exit: ``python -m privsynth.server.migrate``.

The Helm chart runs this as a pre-install / pre-upgrade hook Job, once per release change and
before any server pod of the new version starts; the servers then run with
``PRIVSYNTH_MIGRATE_ON_START=false`` and refuse a schema that is not current
(:meth:`~privsynth.server.db.Database.require_current`). Migrating in one place keeps a
half-finished upgrade from being raced by a rolling set of replicas, and a failed migration
fails the ``helm upgrade`` instead of crash-looping every pod.

It reads the same ``PRIVSYNTH_…`` settings as the server (only the database URL matters) and
prints the revision before and after. On PostgreSQL an advisory lock serialises concurrent
runs; a second run finds the schema current and does nothing.
"""

from __future__ import annotations

import logging
import sys

from privsynth.server.config import Settings
from privsynth.server.db import Database, head_revision
from privsynth.server.logs import configure_logging

__all__ = ["main"]

log = logging.getLogger(__name__)


def main() -> int:
    """Migrate the configured database to this release's newest revision; 0 on success."""
    settings = Settings()
    configure_logging("INFO", settings.log_format)
    # Alembic's own INFO lines name each upgrade step; the line below sums them up.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    db = Database(settings.database_url)
    try:
        before = db.schema_revision()
        db.migrate()
        after = db.schema_revision()
    finally:
        db.close()
    log.info("database schema: %s -> %s (head %s)", before or "empty", after, head_revision())
    return 0 if after == head_revision() else 1


if __name__ == "__main__":
    sys.exit(main())
