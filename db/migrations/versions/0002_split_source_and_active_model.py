"""split source and active model

Clips without a layout split hint get a deterministic split (recorded as split_source
"assigned"); machines get their active detector model.

The split rule is a frozen copy of ``core.datasets.splits`` as it stood when this
revision was written (a migration is a snapshot: it never imports live code, whose
rule may change later).  MIMII's -6/0/6 dB versions of one recording share their key
(machine, label, file name), so they share a split.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:25:53.164954
"""

import hashlib
from pathlib import PurePath

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TRAIN_FRACTION = 0.8
_SPLIT_SALT = "split-v1"


def _split_key(content_hash: str, layout: str, machine: str, label: str, file_name: str) -> str:
    """Frozen copy of ``split_key``: MIMII clips are keyed by their recording, others by their bytes."""
    return f"mimii:{machine}/{label}/{file_name}" if layout == "mimii" else content_hash


def _assign_split(key: str, label: str) -> str:
    """Frozen copy of ``assign_split`` for a clip whose layout gives no split."""
    if label == "abnormal":
        return "test"
    if label != "normal":
        return "none"
    digest = hashlib.sha256(f"{_SPLIT_SALT}:{key}".encode()).digest()
    return "train" if int.from_bytes(digest[:8], "big") / 2**64 < _TRAIN_FRACTION else "test"


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

    _assign_missing_splits()


def _assign_missing_splits() -> None:
    """Give every clip without a split (``none``) the rule's split, where the rule gives one."""
    columns = ("id", "path", "content_hash", "machine_pk", "label", "layout", "split", "split_source")
    clips = sa.table("clips", *(sa.column(name) for name in columns))
    machines = sa.table("machines", sa.column("id"), sa.column("machine_type"), sa.column("machine_id"))
    connection = op.get_bind()
    query = (
        sa.select(clips.c.id, clips.c.path, clips.c.content_hash, clips.c.label, clips.c.layout,
                  machines.c.machine_type, machines.c.machine_id)  # fmt: skip
        .join(machines, machines.c.id == clips.c.machine_pk)
        .where(clips.c.split == "none")
        .order_by(clips.c.id)
    )
    changes = []
    for clip_id, path, content_hash, label, layout, machine_type, machine_id in connection.execute(query).fetchall():
        key = _split_key(content_hash, layout, f"{machine_type}/{machine_id}", label, PurePath(path).name)
        split = _assign_split(key, label)
        if split != "none":
            changes.append({"clip_pk": clip_id, "new_split": split})
    if changes:
        connection.execute(
            clips.update()
            .where(clips.c.id == sa.bindparam("clip_pk"))
            .values(split=sa.bindparam("new_split"), split_source="assigned"),
            changes,
        )


def downgrade() -> None:
    clips = sa.table("clips", sa.column("split"), sa.column("split_source"))
    op.get_bind().execute(clips.update().where(clips.c.split_source == "assigned").values(split="none"))
    with op.batch_alter_table("machines", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_machines_active_model_id_detector_models"), type_="foreignkey")
        batch_op.drop_column("active_model_id")

    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_column("split_source")
