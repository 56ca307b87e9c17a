"""queries that stay fast at a million clips: indexes for the triage queue, compact per-frame errors

* ``scores (model_id, score)``: flagged clips of a model (score above its threshold), highest score or
  closest to the threshold first, limited in SQL;
* ``clips (machine_pk, ingested_at, id)``: a machine's newest clips (triage "newest first", drift's recent
  sample);
* ``annotations (undoes_id)``: whether a verdict stands (no undo row points at it), asked per clip;
* ``scores.frames``: the per-frame and per-band errors as float16 bytes behind a uint32 frame count
  (little-endian), about 0.8 kB per 10 s clip instead of about 3 kB of JSON; existing rows are moved
  over in batches and their JSON emptied.

The byte layout is a frozen copy of ``db.frames`` as it stood when this revision was written: a migration
is a snapshot and never imports live code.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00
"""

import json
import math
import struct

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 2000
_FLOAT16_MAX = 65504.0
_ERROR_KEYS = ("frame_errors", "band_errors")
_UPDATE = sa.text("UPDATE scores SET frames = :frames, details = :rest WHERE id = :id").bindparams(
    sa.bindparam("frames", type_=sa.LargeBinary()), sa.bindparam("rest", type_=sa.JSON(none_as_null=True))
)
_DETAILS = sa.text("UPDATE scores SET details = :details WHERE id = :id").bindparams(
    sa.bindparam("details", type_=sa.JSON())
)


def _pack(frames: list, bands: list) -> bytes:
    values = [v if math.isnan(v) else min(max(v, -_FLOAT16_MAX), _FLOAT16_MAX) for v in map(float, frames + bands)]
    return struct.pack(f"<I{len(values)}e", len(frames), *values)


def _unpack(blob: bytes) -> dict:
    (n_frames,) = struct.unpack_from("<I", blob)
    values = list(struct.unpack_from(f"<{(len(blob) - 4) // 2}e", blob, 4))
    return {"frame_errors": values[:n_frames], "band_errors": values[n_frames:]}


def _move_errors_to_frames(conn) -> None:
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT id, details FROM scores WHERE id > :last AND details IS NOT NULL "
                                    "ORDER BY id LIMIT :n"), {"last": last, "n": _BATCH}).fetchall()  # fmt: skip
        if not rows:
            return
        for row_id, details in rows:
            found = json.loads(details) if isinstance(details, str) else details
            if isinstance(found, dict) and any(k in found for k in _ERROR_KEYS):
                rest = {k: v for k, v in found.items() if k not in _ERROR_KEYS}
                conn.execute(_UPDATE, {"frames": _pack(found.get("frame_errors", []), found.get("band_errors", [])),
                                       "rest": rest or None, "id": row_id})  # fmt: skip
        last = rows[-1][0]


def upgrade() -> None:
    op.add_column("scores", sa.Column("frames", sa.LargeBinary(), nullable=True))
    op.create_index(op.f("ix_scores_model_id_score"), "scores", ["model_id", "score"])
    op.create_index(op.f("ix_clips_machine_pk_ingested_at_id"), "clips", ["machine_pk", "ingested_at", "id"])
    op.create_index(op.f("ix_annotations_undoes_id"), "annotations", ["undoes_id"])
    _move_errors_to_frames(op.get_bind())


def _frames_back_to_json(conn) -> None:
    rows = conn.execute(sa.text("SELECT id, details, frames FROM scores WHERE frames IS NOT NULL")).fetchall()
    for row_id, details, frames in rows:
        found = json.loads(details) if isinstance(details, str) else (details or {})
        conn.execute(_DETAILS, {"details": {**found, **_unpack(bytes(frames))}, "id": row_id})


def downgrade() -> None:
    _frames_back_to_json(op.get_bind())
    op.drop_index(op.f("ix_annotations_undoes_id"), table_name="annotations")
    op.drop_index(op.f("ix_clips_machine_pk_ingested_at_id"), table_name="clips")
    op.drop_index(op.f("ix_scores_model_id_score"), table_name="scores")
    with op.batch_alter_table("scores") as batch:  # SQLite drops a column by rebuilding the table
        batch.drop_column("frames")
