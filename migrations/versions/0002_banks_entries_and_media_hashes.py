"""banks, entries and media hashes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:18:39.943986
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('banks',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('bank_entries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('bank_id', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('pdq', sa.String(length=64), nullable=True),
    sa.Column('pdq_quality', sa.Integer(), nullable=True),
    sa.Column('phash', sa.String(length=16), nullable=True),
    sa.Column('hash_state', sa.String(length=16), nullable=False),
    sa.Column('hash_error', sa.Text(), nullable=True),
    sa.Column('label', sa.String(length=300), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('source_url', sa.Text(), nullable=True),
    sa.Column('source_links', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('submitted_by', sa.String(length=200), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewed_by', sa.String(length=200), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('review_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['bank_id'], ['banks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bank_entries_bank_id'), ['bank_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bank_entries_sha256'), ['sha256'], unique=False)
        batch_op.create_index('ix_bank_entries_status', ['status'], unique=False)

    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pdq', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pdq_quality', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('phash', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('pdq_dihedral', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_column('pdq_dihedral')
        batch_op.drop_column('phash')
        batch_op.drop_column('pdq_quality')
        batch_op.drop_column('pdq')

    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_bank_entries_status')
        batch_op.drop_index(batch_op.f('ix_bank_entries_sha256'))
        batch_op.drop_index(batch_op.f('ix_bank_entries_bank_id'))

    op.drop_table('bank_entries')
    op.drop_table('banks')
