"""The webhook outbox's rows carry the id of the transaction that wrote them (`txid`), so that on
PostgreSQL the relay sends a subscription's events in the order of their transactions and never
one before an earlier transaction's row has committed (`fleet.webhooks.store.heads`). Rows already
there are stamped 0 on PostgreSQL: they come before any later transaction's. SQLite has one
writer at a time, so ids already follow commit order there and the column stays empty.

Revision ID: 0016_outbox_txid
Revises: 0015_counts
Create Date: 2026-12-07 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016_outbox_txid'
down_revision: str | None = '0015_counts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_outbox') as batch:
        batch.add_column(sa.Column('txid', sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('UPDATE webhook_outbox SET txid = 0')


def downgrade() -> None:
    with op.batch_alter_table('webhook_outbox') as batch:
        batch.drop_column('txid')
