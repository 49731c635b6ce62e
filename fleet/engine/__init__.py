"""The adapter from the cloud to the engine: what `jobs` sees of fleet, and the one door to it.

`opspec` gives an operation's opaque JSON its meaning (parameters, selector, with errors naming
the field; `tag_limits` bounds tag filters); `admission` is the one door every request to act goes
through (API, dry run, policy create, replace and fire); `planner` turns a selector into plan items
through the drivers (`jobs.ports.Planner`); `executor` turns a claimed batch into one driver call
and its answer into engine outcomes (`jobs.ports.Executor`); `gate` puts every driver request
behind the engine's rate limiter. What an action means on a dialect is read from the drivers'
declarations (`fleet.drivers.actions`), never decided here.
"""

from fleet.engine.admission import ActRequest, Admission
from fleet.engine.executor import FleetExecutor
from fleet.engine.gate import LimiterGate
from fleet.engine.opspec import SpecError, Targets, parse_params, parse_targets
from fleet.engine.planner import FleetPlanner

__all__ = [
    "ActRequest",
    "Admission",
    "FleetExecutor",
    "FleetPlanner",
    "LimiterGate",
    "SpecError",
    "Targets",
    "parse_params",
    "parse_targets",
]
