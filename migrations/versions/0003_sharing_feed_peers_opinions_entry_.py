"""sharing: feed, peers, opinions, entry origins

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:39:45.682673
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('instance_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('private_key', sa.Text(), nullable=False),
    sa.Column('public_key', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('peers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('public_key', sa.String(length=100), nullable=False),
    sa.Column('banks', sa.JSON(), nullable=False),
    sa.Column('trust', sa.String(length=16), nullable=False),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('last_pull_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('feed_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('bank_id', sa.String(length=32), nullable=False),
    sa.Column('entry_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bank_id'], ['banks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feed_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_events_bank_id'), ['bank_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feed_events_entry_id'), ['entry_id'], unique=False)

    op.create_table('opinions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.String(length=32), nullable=False),
    sa.Column('instance', sa.String(length=200), nullable=False),
    sa.Column('opinion', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['bank_entries.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('opinions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opinions_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index('ix_opinions_entry_instance', ['entry_id', 'instance'], unique=True)

    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False,
                                      server_default=sa.func.current_timestamp()))
        batch_op.add_column(sa.Column('origin_instance', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('origin_entry_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('origin_signature', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('disputed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_bank_entries_origin', ['origin_instance', 'origin_entry_id'], unique=True)

    with op.batch_alter_table('banks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shared', sa.Boolean(), nullable=False, server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('banks', schema=None) as batch_op:
        batch_op.drop_column('shared')

    with op.batch_alter_table('bank_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_bank_entries_origin')
        batch_op.drop_column('disputed')
        batch_op.drop_column('origin_signature')
        batch_op.drop_column('origin_entry_id')
        batch_op.drop_column('origin_instance')
        batch_op.drop_column('updated_at')

    with op.batch_alter_table('opinions', schema=None) as batch_op:
        batch_op.drop_index('ix_opinions_entry_instance')
        batch_op.drop_index(batch_op.f('ix_opinions_entry_id'))

    op.drop_table('opinions')
    with op.batch_alter_table('feed_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_events_entry_id'))
        batch_op.drop_index(batch_op.f('ix_feed_events_bank_id'))

    op.drop_table('feed_events')
    op.drop_table('peers')
    op.drop_table('instance_identity')
