"""Holdouts and quality reports (issue 15).

``jobs.holdout_fraction``: the share of the dataset's privacy units a job holds out of training
(chosen when it starts, see ``privsynth.server.privacy.holdout``); NULL on jobs created before,
which trained on every record. ``evaluations``: quality-report jobs (EvaluateModel), their
progress, and the content-hashed JSON report they stored.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("holdout_fraction", sa.Float, nullable=True))
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_id", sa.String(32), nullable=False, index=True),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("sample_count", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(32), nullable=False, server_default=""),
        sa.Column("stages_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("stages_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error_message", sa.Text, nullable=False, server_default=""),
        sa.Column("report_path", sa.String(300), nullable=False, server_default=""),
        sa.Column("report_sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("actor", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("evaluations")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("holdout_fraction")
