"""Who runs a job: the server's own workers, or a torchrun Job under the server's ledger.

``runner`` is ``"worker"`` (a worker thread of a server replica, as every job before) or
``"torchrun"`` (distributed training launched as ``torchrun -m privsynth.server.jobs.distributed
--job jobs/<id>``, which claims the reserved job, trains on every rank and commits what it
spent). Replicas' workers never take up a torchrun job. Existing rows read as ``"worker"``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("runner", sa.String(16), nullable=False, server_default="worker")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("runner")
