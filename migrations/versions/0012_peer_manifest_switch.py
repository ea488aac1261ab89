"""peers: a switch for the manifest events of each peer's feed (the manifest repository)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Peers added before the switch keep doing what they did: their manifest events are asked for.
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('manifests', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.drop_column('manifests')
