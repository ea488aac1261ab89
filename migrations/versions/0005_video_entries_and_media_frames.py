"""video: bank entries and media carry a file MD5 and keyframe PDQs; media remember a partial fetch

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:05:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media_kind', sa.String(length=8), nullable=False, server_default='image'))
        batch_op.add_column(sa.Column('md5', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('frame_pdqs', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_bank_entries_md5'), ['md5'], unique=False)

    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.add_column(sa.Column('md5', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('frame_pdqs', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('source_size', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_media_md5'), ['md5'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_md5'))
        batch_op.drop_column('source_size')
        batch_op.drop_column('frame_pdqs')
        batch_op.drop_column('md5')

    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bank_entries_md5'))
        batch_op.drop_column('frame_pdqs')
        batch_op.drop_column('md5')
        batch_op.drop_column('media_kind')
