"""anomaly types

A team-editable list of fault kinds for verdicts, seeded with the usual ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:12:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DEFAULT_TYPES = ("imbalance", "bearing", "rubbing", "clogging", "leakage", "sticking", "other")


def upgrade() -> None:
    table = op.create_table(
        "anomaly_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_types")),
        sa.UniqueConstraint("name", name=op.f("uq_anomaly_types_name")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(table, [{"name": name, "created_by": "system", "created_at": now} for name in DEFAULT_TYPES])


def downgrade() -> None:
    op.drop_table("anomaly_types")
