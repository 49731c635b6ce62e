"""The sub-job state `unknown` (`jobs.states.State.UNKNOWN`): a call that may have acted where the
cloud keeps no record either way. Only the state CHECK changes (rebuilt in batch mode on SQLite).

Downgrade maps what the older schema cannot hold: `unknown` sub-jobs become `failed` (they keep
`verify_first`, their code `engine.no_evidence` and message, so a retry-failed reads the cloud
before sending again), and their event rows `no_evidence` become `fail` (states `unknown` become
`failed`), so the older code can read the history.

Revision ID: 0006_unknown
Revises: 0005
Create Date: 2026-12-07 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_unknown'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = 'ck_subjobs_state'
BEFORE = "state IN ('pending', 'dispatching', 'awaiting', 'succeeded', 'failed', 'cancelled', 'skipped')"
AFTER = (
    "state IN ('pending', 'dispatching', 'awaiting', 'succeeded', 'failed', 'cancelled', "
    "'skipped', 'unknown')"
)


def _replace_check(sqltext: str) -> None:
    with op.batch_alter_table('subjobs', schema=None) as batch_op:
        batch_op.drop_constraint(CHECK, type_='check')
        batch_op.create_check_constraint(CHECK, sa.text(sqltext))


def upgrade() -> None:
    _replace_check(AFTER)


def downgrade() -> None:
    op.execute(sa.text("UPDATE subjobs SET state = 'failed' WHERE state = 'unknown'"))
    op.execute(sa.text("UPDATE events SET event = 'fail' WHERE event = 'no_evidence'"))
    op.execute(sa.text("UPDATE events SET to_state = 'failed' WHERE to_state = 'unknown'"))
    op.execute(sa.text("UPDATE events SET from_state = 'failed' WHERE from_state = 'unknown'"))
    _replace_check(BEFORE)
