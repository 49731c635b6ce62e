"""Approvals: an operation's approval rules, and once planning found one that holds, why, until
when, and the decision with who and when (NULL decision: pending).

Revision ID: 0012_approvals
Revises: 0008_throttled_since
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0012_approvals'
down_revision: str | None = '0011_drift'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table('operations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approval_rules', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('approval_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('approval_expires_at', _TIME(), nullable=True))
        batch_op.add_column(sa.Column('approval_decision', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('approval_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('approval_at', _TIME(), nullable=True))
        batch_op.add_column(sa.Column('approval_note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('operations', schema=None) as batch_op:
        for name in (
            'approval_note',
            'approval_at',
            'approval_by',
            'approval_decision',
            'approval_expires_at',
            'approval_reason',
            'approval_rules',
        ):
            batch_op.drop_column(name)
