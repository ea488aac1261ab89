"""provenance: an imported manifest store's re-validation here (its outcome and the soft bindings it proves)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('provenance_manifests', sa.Column('revalidation', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('provenance_manifests') as batch:
        batch.drop_column('revalidation')
