"""Record a training job's label prompt template (issue 14).

``jobs.label_prompt``: the request a label is written into for models that prompt in words
(``privsynth.models.label_prompt``), at most 200 characters. NULL: the model family's default,
which every job before this revision used.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("label_prompt", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("label_prompt")
