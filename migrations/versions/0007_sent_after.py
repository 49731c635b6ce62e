"""Sub-jobs keep `sent_after`: the cloud's clock, as last read before the claim of their current
send (`jobs.records.ClaimRequest.cloud_floor`), the lower bound that the cloud's records of an
action (instance actions) are compared with when that send may or may not have reached it.

Revision ID: 0007_sent_after
Revises: 0006_unknown
Create Date: 2026-12-07 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007_sent_after'
down_revision: str | None = '0006_unknown'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('subjobs') as batch:
        batch.add_column(
            sa.Column('sent_after', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('subjobs') as batch:
        batch.drop_column('sent_after')
