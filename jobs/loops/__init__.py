"""The engine's loops: each one does one kind of work per round and talks to the rest only
through the ports (`jobs.ports`), never through the store's SQL.

`planning` resolves an operation's targets into sub-jobs, `dispatch` claims batches and sends them
within the rate budgets, `polling` reads back what the cloud is still doing, `reaping` takes back
leases that a dead worker held, and `recorder` commits the cloud's answers many per transaction.
`runtime` owns the while-loops, the wake-ups, the leases and the graceful drain: `Runtime` is what
a process starts.
"""

from jobs.loops.dispatch import Dispatcher
from jobs.loops.planning import PlanningLoop
from jobs.loops.polling import Poller
from jobs.loops.reaping import Reaper
from jobs.loops.recorder import Recorder
from jobs.loops.runtime import Runtime

__all__ = ["Dispatcher", "PlanningLoop", "Poller", "Reaper", "Recorder", "Runtime"]
