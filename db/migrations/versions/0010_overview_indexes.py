"""indexes that answer Overview, drift and the Thresholds page from the index alone

* ``scores (model_id, score, clip_id)`` replaces ``scores (model_id, score)``: a model's flagged clips (and its
  score histogram) without reading the score rows, which hold the per-frame errors;
* ``clips (id, machine_pk)``: a clip's machine without reading its row (Overview's grouped counts join scores and
  verdicts to machines through it);
* ``clips (machine_pk, label, sample_rate, ingested_at, split, id)`` replaces ``clips (machine_pk, label)``: drift's
  normal candidates at the model's rate until it was trained, the rates of a machine's normal training clips, its
  clips at another rate and the Thresholds page's labelled candidates, all from the index (``id`` last: SQLite
  indexes hold the row id anyway, PostgreSQL's need it to answer from the index alone).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_scores_model_id_score_clip_id"), "scores", ["model_id", "score", "clip_id"])
    op.drop_index(op.f("ix_scores_model_id_score"), table_name="scores")
    op.create_index(op.f("ix_clips_id_machine_pk"), "clips", ["id", "machine_pk"])
    op.create_index(op.f("ix_clips_machine_pk_label_sample_rate_ingested_at_split_id"), "clips",
                    ["machine_pk", "label", "sample_rate", "ingested_at", "split", "id"])  # fmt: skip
    op.drop_index(op.f("ix_clips_machine_pk_label"), table_name="clips")


def downgrade() -> None:
    op.create_index(op.f("ix_clips_machine_pk_label"), "clips", ["machine_pk", "label"])
    op.drop_index(op.f("ix_clips_machine_pk_label_sample_rate_ingested_at_split_id"), table_name="clips")
    op.drop_index(op.f("ix_clips_id_machine_pk"), table_name="clips")
    op.create_index(op.f("ix_scores_model_id_score"), "scores", ["model_id", "score"])
    op.drop_index(op.f("ix_scores_model_id_score_clip_id"), table_name="scores")
