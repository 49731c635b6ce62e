"""The engine's persistence: every SQL statement the engine runs, on SQLite or PostgreSQL.

`SqlJobStore` (`job_store`) is the one object the rest of the engine and the product talk to; it
implements `jobs.ports.JobStore` and hands out frozen records (`jobs.records`), never rows. Behind
it, one module per concern: `ops`, `planning`, `claims`, `leases`, `settle`, `totals` (for
`/metrics`) and `base` (row conversion, events); `models` holds the tables, `db` the connection
handling (`Database`, shared with the product's own tables) and `migrate` the Alembic entry
points (`upgrade`, imported from there so that a plain store does not load Alembic).
"""

from jobs.store.db import Database
from jobs.store.job_store import SqlJobStore

__all__ = ["Database", "SqlJobStore"]
