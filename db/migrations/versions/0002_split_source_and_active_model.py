"""split source and active model

Clips without a layout split hint get the deterministic split of core.datasets.splits
(recorded as split_source "assigned"); machines get their active detector model.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:25:53.164954
"""

import sqlalchemy as sa
from alembic import op

from core.datasets.splits import assign_split

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("split_source", sa.String(length=8), nullable=False, server_default="layout"))

    with op.batch_alter_table("machines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("active_model_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_machines_active_model_id_detector_models"),
            "detector_models",
            ["active_model_id"],
            ["id"],
            ondelete="SET NULL",
        )

    clips = sa.table("clips", sa.column("id"), sa.column("content_hash"), sa.column("label"),
                     sa.column("split"), sa.column("split_source"))  # fmt: skip
    connection = op.get_bind()
    rows = connection.execute(sa.select(clips.c.id, clips.c.content_hash, clips.c.label).where(clips.c.split == "none"))
    for clip_id, content_hash, label in rows.fetchall():
        split = assign_split(content_hash, label, "none")
        if split != "none":
            connection.execute(
                clips.update().where(clips.c.id == clip_id).values(split=split, split_source="assigned")
            )


def downgrade() -> None:
    clips = sa.table("clips", sa.column("split"), sa.column("split_source"))
    op.get_bind().execute(clips.update().where(clips.c.split_source == "assigned").values(split="none"))
    with op.batch_alter_table("machines", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_machines_active_model_id_detector_models"), type_="foreignkey")
        batch_op.drop_column("active_model_id")

    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("split_source")
