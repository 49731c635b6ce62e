"""Each engine's `workers` row says which release of the engine it runs (`release`), so that a
behaviour older replicas would break is used only once every live replica has it: an operation
is opened to dispatch while its listing goes on (D101) only when no live worker row lacks it.
Rows already there, and those replicas of the previous release write, stay NULL: an old release.

Revision ID: 0017_worker_release
Revises: 0016_outbox_txid
Create Date: 2026-12-07 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017_worker_release'
down_revision: str | None = '0016_outbox_txid'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('release', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_column('release')
