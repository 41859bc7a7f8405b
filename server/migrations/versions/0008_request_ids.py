"""Request ids (AIP-155): a retried create returns the first attempt's resource.

``request_id`` (the caller's id for one logical call) and ``request_hash`` (a digest of its
parameters) on jobs and datasets, unique per tenant, so that a retried CreateTrainingJob
reserves nothing twice and a retried upload stores nothing twice. Existing rows keep NULL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("jobs", "datasets")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))
            batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
            batch.create_index(
                f"ix_{table}_tenant_request_id", ["tenant", "request_id"], unique=True
            )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_tenant_request_id")
            batch.drop_column("request_hash")
            batch.drop_column("request_id")
