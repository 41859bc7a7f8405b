"""Record a dataset's stored size, for the per-tenant storage share.

``datasets.size_bytes``: bytes of the scrubbed shard. NULL for datasets stored before this
revision: the share reads their size from the artifact store the first time it counts them and
writes it here (the store may be an object store, which a migration cannot reach).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("size_bytes")
