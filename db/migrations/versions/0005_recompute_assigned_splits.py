"""recompute assigned splits

Revision 0002 keyed every assigned split by the clip's content hash, so MIMII's -6, 0
and 6 dB versions of one recording (same file name, different bytes) could straddle
train and test.  Ingest has since keyed MIMII clips by their recording (machine, label,
file name).  This revision recomputes the split of every clip whose split was assigned
(``split_source`` "assigned") with that rule, so an upgraded database holds the splits
a fresh ingest gives.  Splits a layout gave (``split_source`` "layout") are left alone.

The rule is a frozen copy of ``core.datasets.splits`` as it stood when this revision was
written: a migration is a snapshot and never imports live code.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00
"""

import hashlib
from pathlib import PurePath

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
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
    columns = ("id", "path", "content_hash", "machine_pk", "label", "layout", "split", "split_source")
    clips = sa.table("clips", *(sa.column(name) for name in columns))
    machines = sa.table("machines", sa.column("id"), sa.column("machine_type"), sa.column("machine_id"))
    connection = op.get_bind()
    query = (
        sa.select(clips.c.id, clips.c.path, clips.c.content_hash, clips.c.label, clips.c.layout, clips.c.split,
                  machines.c.machine_type, machines.c.machine_id)  # fmt: skip
        .join(machines, machines.c.id == clips.c.machine_pk)
        .where(clips.c.split_source == "assigned")
        .order_by(clips.c.id)
    )
    changes = []
    rows = connection.execute(query).fetchall()
    for clip_id, path, content_hash, label, layout, split, machine_type, machine_id in rows:
        key = _split_key(content_hash, layout, f"{machine_type}/{machine_id}", label, PurePath(path).name)
        new = _assign_split(key, label)
        if new != split:
            # a clip the rule leaves without a split is one a fresh ingest records as the layout's "none"
            source = "assigned" if new != "none" else "layout"
            changes.append({"clip_pk": clip_id, "new_split": new, "new_source": source})
    if changes:
        connection.execute(
            clips.update()
            .where(clips.c.id == sa.bindparam("clip_pk"))
            .values(split=sa.bindparam("new_split"), split_source=sa.bindparam("new_source")),
            changes,
        )


def downgrade() -> None:
    # Nothing to undo: the splits before this revision were the content-hash ones, which
    # are not worth restoring (they let one recording straddle train and test), and the
    # schema is unchanged.
    pass
