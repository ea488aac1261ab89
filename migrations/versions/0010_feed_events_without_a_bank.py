"""feed: events that belong to no bank (shared repository manifests and their withdrawals)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 03:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feed_events', schema=None) as batch_op:
        batch_op.alter_column('bank_id', existing_type=sa.String(length=32), nullable=True)
        batch_op.alter_column('kind', existing_type=sa.String(length=16), type_=sa.String(length=24),
                              existing_nullable=False)


def downgrade() -> None:
    # Events without a bank cannot exist before this revision: they leave the feed (readers keep their copies).
    op.execute("DELETE FROM feed_events WHERE bank_id IS NULL")
    with op.batch_alter_table('feed_events', schema=None) as batch_op:
        batch_op.alter_column('kind', existing_type=sa.String(length=24), type_=sa.String(length=16),
                              existing_nullable=False)
        batch_op.alter_column('bank_id', existing_type=sa.String(length=32), nullable=False)
