"""Record the DP release of per-label token statistics (issue 14).

``stats_noise_multiplier`` is that Gaussian release's noise over its L2 sensitivity of 1 (one
event, sampling probability 1), on jobs and on ledger entries, so the ledger composes it with
the job's DP-SGD steps and label release. NULL: no such release (every job before this one).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("stats_noise_multiplier", sa.Float, nullable=True))
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("stats_noise_multiplier", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("stats_noise_multiplier")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("stats_noise_multiplier")
