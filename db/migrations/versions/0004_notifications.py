"""notifications outbox

One row per (flagged clip, model, channel): the watcher enqueues, a background sender
delivers with retries, and a restart resumes what was pending, never sending twice.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 16:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_notifications_status")),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_notifications_clip_id_clips"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["detector_models.id"],
                                name=op.f("fk_notifications_model_id_detector_models"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("clip_id", "model_id", "channel", name=op.f("uq_notifications_clip_id_model_id_channel")),
    )  # fmt: skip
    op.create_index(op.f("ix_notifications_status_next_attempt_at"), "notifications", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_status_next_attempt_at"), table_name="notifications")
    op.drop_table("notifications")
