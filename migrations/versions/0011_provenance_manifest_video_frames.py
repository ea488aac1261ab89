"""provenance: a signed video's vPDQ frame PDQs, so a stripped re-encode finds its manifest again

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 06:10:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('provenance_manifests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frame_pdqs', sa.Text(), nullable=True))
    # The videos alone: the frame lookup reads and counts them without scanning every picture's row.
    op.create_index('ix_provenance_manifests_videos', 'provenance_manifests', ['last_seen'],
                    postgresql_where=sa.text('frame_pdqs IS NOT NULL'), sqlite_where=sa.text('frame_pdqs IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_provenance_manifests_videos', table_name='provenance_manifests')
    with op.batch_alter_table('provenance_manifests', schema=None) as batch_op:
        batch_op.drop_column('frame_pdqs')
