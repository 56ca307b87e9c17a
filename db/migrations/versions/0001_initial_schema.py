"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 13:04:16.214304
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_detector_models()
    _create_exports()
    _create_machines()
    _create_rejected_files()
    _create_clips()
    _create_thresholds()
    _create_training_jobs()
    _create_annotations()
    _create_scores()


def _create_detector_models() -> None:
    op.create_table('detector_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('detector', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=140), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('artifact_path', sa.Text(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('provenance', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_detector_models')),
    sa.UniqueConstraint('detector', 'scope', 'version', name=op.f('uq_detector_models_detector_scope_version'))
    )


def _create_exports() -> None:
    op.create_table('exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('out_dir', sa.Text(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports'))
    )


def _create_machines() -> None:
    op.create_table('machines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('machine_type', sa.String(length=64), nullable=False),
    sa.Column('machine_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_machines')),
    sa.UniqueConstraint('machine_type', 'machine_id', name=op.f('uq_machines_machine_type_machine_id'))
    )


def _create_rejected_files() -> None:
    op.create_table('rejected_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejected_files'))
    )


def _create_clips() -> None:
    op.create_table('clips',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('machine_pk', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=16), nullable=False),
    sa.Column('split', sa.String(length=8), nullable=False),
    sa.Column('layout', sa.String(length=16), nullable=False),
    sa.Column('snr_db', sa.Float(), nullable=True),
    sa.Column('domain', sa.String(length=16), nullable=True),
    sa.Column('sample_rate', sa.Integer(), nullable=False),
    sa.Column('n_channels', sa.Integer(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('n_bytes', sa.BigInteger(), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("label IN ('normal', 'abnormal', 'unknown')", name=op.f('ck_clips_label')),
    sa.CheckConstraint("split IN ('train', 'test', 'none')", name=op.f('ck_clips_split')),
    sa.ForeignKeyConstraint(['machine_pk'], ['machines.id'], name=op.f('fk_clips_machine_pk_machines'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clips')),
    sa.UniqueConstraint('content_hash', name=op.f('uq_clips_content_hash'))
    )
    with op.batch_alter_table('clips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clips_ingested_at'), ['ingested_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_clips_machine_pk_label'), ['machine_pk', 'label'], unique=False)


def _create_thresholds() -> None:
    op.create_table('thresholds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('set_by', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['detector_models.id'], name=op.f('fk_thresholds_model_id_detector_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_thresholds'))
    )
    with op.batch_alter_table('thresholds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_thresholds_model_id'), ['model_id'], unique=False)


def _create_training_jobs() -> None:
    op.create_table('training_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=True),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('external', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], name=op.f('fk_training_jobs_export_id_exports'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['model_id'], ['detector_models.id'], name=op.f('fk_training_jobs_model_id_detector_models'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_jobs'))
    )


def _create_annotations() -> None:
    op.create_table('annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('annotator', sa.String(length=128), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('anomaly_type', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('undoes_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("verdict IN ('normal', 'abnormal', 'unsure')", name=op.f('ck_annotations_verdict')),
    sa.ForeignKeyConstraint(['clip_id'], ['clips.id'], name=op.f('fk_annotations_clip_id_clips'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['undoes_id'], ['annotations.id'], name=op.f('fk_annotations_undoes_id_annotations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations'))
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotations_clip_id_created_at'), ['clip_id', 'created_at'], unique=False)


def _create_scores() -> None:
    op.create_table('scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clips.id'], name=op.f('fk_scores_clip_id_clips'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_id'], ['detector_models.id'], name=op.f('fk_scores_model_id_detector_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scores')),
    sa.UniqueConstraint('clip_id', 'model_id', name=op.f('uq_scores_clip_id_model_id'))
    )
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scores_model_id'), ['model_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scores_model_id'))

    op.drop_table('scores')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotations_clip_id_created_at'))

    op.drop_table('annotations')
    op.drop_table('training_jobs')
    with op.batch_alter_table('thresholds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_thresholds_model_id'))

    op.drop_table('thresholds')
    with op.batch_alter_table('clips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clips_machine_pk_label'))
        batch_op.drop_index(batch_op.f('ix_clips_ingested_at'))

    op.drop_table('clips')
    op.drop_table('rejected_files')
    op.drop_table('machines')
    op.drop_table('exports')
    op.drop_table('detector_models')
