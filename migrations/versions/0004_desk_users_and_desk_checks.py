"""newsroom desk: users (sign-in with API roles) and desk_checks (who ran which check)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:43:44.335136
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('desk_checks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('check_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['check_id'], ['checks.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('desk_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_desk_checks_check_id'), ['check_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_desk_checks_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_desk_checks_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('desk_checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_desk_checks_user_id'))
        batch_op.drop_index(batch_op.f('ix_desk_checks_created_at'))
        batch_op.drop_index(batch_op.f('ix_desk_checks_check_id'))

    op.drop_table('desk_checks')
    op.drop_table('users')
