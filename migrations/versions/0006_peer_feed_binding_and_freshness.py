"""peers: the instance name their key signs as, and the newest signed head and time seen (replay guard)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instance', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('head', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('page_issued_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_peers_instance', ['instance'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.drop_index('ix_peers_instance')
        batch_op.drop_column('page_issued_at')
        batch_op.drop_column('head')
        batch_op.drop_column('instance')
