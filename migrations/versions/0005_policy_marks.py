"""Marks that fleet keeps itself (fleet.policies.tables.POLICY_MARKS): a mark policy's mark on a
server whose dialect has no tag API (EasyStack), keyed by endpoint, server id and tag key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('policy_marks',
    sa.Column('endpoint', sa.String(length=100), nullable=False),
    sa.Column('server_id', sa.String(length=255), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('policy_id', sa.String(length=100), nullable=False),
    sa.Column('fire_id', BigId, nullable=True),
    sa.Column('marked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('endpoint', 'server_id', 'tag')
    )


def downgrade() -> None:
    op.drop_table('policy_marks')
