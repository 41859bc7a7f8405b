"""Record the DP release of a job's label distribution (issue 5).

``label_noise_multiplier`` is the Gaussian release's noise over its L2 sensitivity (one event,
sampling probability 1), on jobs and on ledger entries, so the ledger composes it with the
job's DP-SGD steps. ``label_release`` on jobs holds the request: mode (dp, public, none),
ε share, sensitivity, threshold, declared weights and who declared them. Existing rows keep NULL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("label_noise_multiplier", sa.Float, nullable=True))
        batch.add_column(sa.Column("label_release", sa.JSON, nullable=True))
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("label_noise_multiplier", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("label_noise_multiplier")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("label_release")
        batch.drop_column("label_noise_multiplier")
