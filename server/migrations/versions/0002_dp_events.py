"""Record each job's DP-SGD event (σ, q, steps) on jobs and ledger entries.

Existing rows keep NULL events; the ledger composes them as generic (ε, δ) mechanisms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("noise_multiplier", sa.Float, nullable=True))
        batch.add_column(sa.Column("sample_rate", sa.Float, nullable=True))
        batch.add_column(sa.Column("planned_steps", sa.Integer, nullable=True))
        batch.add_column(sa.Column("steps_taken", sa.Integer, nullable=True))
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("noise_multiplier", sa.Float, nullable=True))
        batch.add_column(sa.Column("sample_rate", sa.Float, nullable=True))
        batch.add_column(sa.Column("steps", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("steps")
        batch.drop_column("sample_rate")
        batch.drop_column("noise_multiplier")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("steps_taken")
        batch.drop_column("planned_steps")
        batch.drop_column("sample_rate")
        batch.drop_column("noise_multiplier")
