"""Leases on running jobs, so several replicas with workers can share one database.

``worker`` names the process running a job and ``heartbeat_at`` is when it last renewed its
lease. A replica takes over a RUNNING job only when its lease expired (or it ran under the
replica's own name), instead of treating every RUNNING job as orphaned on start-up. Existing
rows keep NULL, which reads as "cut off", as every RUNNING job did before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("worker", sa.String(128), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("worker")
