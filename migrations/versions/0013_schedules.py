"""Per-server schedules defined through the API (fleet.policies.tables.SCHEDULES): a named
schedule's spec (periods, time zone, skip days) with its version.

Revision ID: 0013_schedules
Revises: 0008_throttled_since
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0013_schedules'
down_revision: str | None = '0012_approvals'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('schedules',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('schedules')
