"""When a sub-job's current run of throttled answers began: the endpoint's throttling deadline
counts from it (a sub-job throttled for longer fails with the cloud's code).

Revision ID: 0008_throttled_since
Revises: 0007_sent_after
Create Date: 2026-12-08 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008_throttled_since'
down_revision: str | None = '0007_sent_after'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('subjobs', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('throttled_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('subjobs', schema=None) as batch_op:
        batch_op.drop_column('throttled_since')
