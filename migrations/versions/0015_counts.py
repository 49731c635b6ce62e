"""Per-state counts of each operation's sub-jobs (`subjob_counts`), kept by the store in the same
transaction as the sub-jobs' changes; filled here from the sub-jobs already there.

Revision ID: 0015_counts
Revises: 0008_throttled_since
Create Date: 2026-12-09 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015_counts'
down_revision: str | None = '0014_rate_leases'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'subjob_counts',
        sa.Column('operation_id', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['operation_id'],
            ['operations.id'],
            name='fk_subjob_counts_operation',
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('operation_id', 'state'),
    )
    op.execute(
        'INSERT INTO subjob_counts (operation_id, state, n) '
        'SELECT operation_id, state, count(*) FROM subjobs GROUP BY operation_id, state'
    )


def downgrade() -> None:
    op.drop_table('subjob_counts')
