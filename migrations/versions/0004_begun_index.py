"""A partial index of the sub-jobs whose action has begun (pending at a later step of a recipe, or
to be verified): the dispatcher counts them against max_in_flight and looks for them on stopped
operations every round, without scanning the pending rows.

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

BEGUN = "state = 'pending' AND (step > 0 OR verify_first)"


def upgrade() -> None:
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
