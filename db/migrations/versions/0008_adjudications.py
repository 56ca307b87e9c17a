"""adjudications, and the annotator's role on each verdict

An adjudication is an engineer's (or higher) final verdict on a disputed or doubtful clip, with the
reason; appended, the latest of a clip standing.  Each verdict now records the role its annotator
had when judging (nullable: verdicts written before this revision, and names the CLI's operator
records for people without an account, have no known role).

The verdicts and roles are frozen copies of ``core.vocabulary`` as it stood when this revision was
written: a migration is a snapshot and never imports live code.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_VERDICTS = ("normal", "abnormal")
_ROLES = ("annotator", "engineer", "manager", "admin")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.add_column("annotations", sa.Column("role", sa.String(length=16), nullable=True))
    op.create_table(
        "adjudications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("adjudicator", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("anomaly_type", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_one_of("verdict", _VERDICTS), name=op.f("ck_adjudications_verdict")),
        sa.CheckConstraint(_one_of("role", _ROLES), name=op.f("ck_adjudications_role")),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_adjudications_clip_id_clips"),
                                ondelete="CASCADE"),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjudications")),
    )
    op.create_index(op.f("ix_adjudications_clip_id_created_at"), "adjudications", ["clip_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_adjudications_clip_id_created_at"), table_name="adjudications")
    op.drop_table("adjudications")
    with op.batch_alter_table("annotations") as batch:  # SQLite drops a column by rebuilding the table
        batch.drop_column("role")
