"""provenance: the manifest repository (valid manifests read, and the soft bindings that find them again)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:50:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'provenance_manifests',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('mime', sa.String(length=100), nullable=True),
        sa.Column('label', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('signer', sa.JSON(), nullable=False),
        sa.Column('signing_time', sa.String(length=64), nullable=True),
        sa.Column('actions', sa.JSON(), nullable=False),
        sa.Column('ai_declarations', sa.JSON(), nullable=False),
        sa.Column('thumbnail_sha256', sa.String(length=64), nullable=True),
        sa.Column('thumbnail_format', sa.String(length=100), nullable=True),
        sa.Column('store', sa.LargeBinary(), nullable=True),
        sa.Column('store_size', sa.Integer(), nullable=True),
        sa.Column('pdq', sa.String(length=64), nullable=True),
        sa.Column('pdq_quality', sa.Integer(), nullable=True),
        sa.Column('pdq_dihedral', sa.Text(), nullable=True),
        sa.Column('iscc', sa.String(length=64), nullable=True),
        sa.Column('origin', sa.String(length=300), nullable=True),
        sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sha256'),
    )
    op.create_index('ix_provenance_manifests_iscc', 'provenance_manifests', ['iscc'], unique=False)
    op.create_index('ix_provenance_manifests_label', 'provenance_manifests', ['label'], unique=False)
    op.create_index('ix_provenance_manifests_last_seen', 'provenance_manifests', ['last_seen'], unique=False)
    op.create_table(
        'provenance_bindings',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('manifest_id', sa.String(length=32), nullable=False),
        sa.Column('alg', sa.String(length=100), nullable=False),
        sa.Column('value', sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(['manifest_id'], ['provenance_manifests.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_provenance_bindings_manifest_id', 'provenance_bindings', ['manifest_id'], unique=False)
    op.create_index('ix_provenance_bindings_alg_value', 'provenance_bindings', ['alg', 'value'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_provenance_bindings_alg_value', table_name='provenance_bindings')
    op.drop_index('ix_provenance_bindings_manifest_id', table_name='provenance_bindings')
    op.drop_table('provenance_bindings')
    op.drop_index('ix_provenance_manifests_last_seen', table_name='provenance_manifests')
    op.drop_index('ix_provenance_manifests_label', table_name='provenance_manifests')
    op.drop_index('ix_provenance_manifests_iscc', table_name='provenance_manifests')
    op.drop_table('provenance_manifests')
