"""Sub-jobs whose action has begun: `begun` (a call of the action was accepted by the cloud), and a
partial index of the pending ones that are begun or to be verified, which the dispatcher counts
against max_in_flight and looks for on stopped operations every round, without scanning the
pending rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEGUN = "state = 'pending' AND (begun OR verify_first)"


def upgrade() -> None:
    with op.batch_alter_table('subjobs', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('begun', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # rows already past their first step, or accepted at it, had a call accepted
    op.execute(
        sa.text("UPDATE subjobs SET begun = (step > 0 OR accepted_at IS NOT NULL)")
    )
    with op.batch_alter_table('subjobs', schema=None) as batch_op:
        batch_op.create_index(
            'ix_subjobs_begun',
            ['operation_id'],
            unique=False,
            sqlite_where=sa.text(BEGUN),
            postgresql_where=sa.text(BEGUN),
        )


def downgrade() -> None:
    with op.batch_alter_table('subjobs', schema=None) as batch_op:
        batch_op.drop_index('ix_subjobs_begun')
        batch_op.drop_column('begun')
