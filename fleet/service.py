"""The composition root: the one place where concrete parts are built and wired together.

`open_fleet(settings)` starts (in order) the embedded simulator if configured, one HTTP session,
rate-limiter gate and driver per endpoint, the job store (migrated), the planner and executor, and
the engine runtime; it yields a `Fleet` and closes everything in reverse order on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import structlog
from sqlalchemy.engine import make_url

from fleet.drivers.base import Driver, discover_all
from fleet.drivers.http import listening
from fleet.drivers.registry import create_driver
from fleet.endpoints import SimEndpoints, budget_overrides, endpoint_config
from fleet.engine.admission import Admission, ApprovalConfig
from fleet.engine.executor import FleetExecutor
from fleet.engine.gate import LimiterGate, configure_endpoint
from fleet.engine.planner import FleetPlanner
from fleet.policies.files import PolicySet, load_policy_files
from fleet.policies.leader import TOTALS_KEY, Leadership, leadership_for
from fleet.policies.model import PolicyError
from fleet.policies.scheduler import run_policies
from fleet.policies.service import PolicyService
from fleet.readiness import CredentialChecks
from fleet.settings import Settings, SettingsError, configured_guard, delete_guard
from fleet.webhooks.engine_events import on_engine_events
from fleet.webhooks.relay import running_relay
from fleet.webhooks.service import WebhookService
from fleet.webhooks.store import WebhookStore
from jobs.clock import Clock, SystemClock
from jobs.config import EngineConfig
from jobs.loops.runtime import Runtime
from jobs.operations import Operations
from jobs.ratelimit import RateLimiter
from jobs.retry import RetryPolicy
from jobs.sharedlimit import SharedRateLimiter
from jobs.store import SqlJobStore
from jobs.store.budgets import SqlLedger
from jobs.store.identity import WorkerLock, worker_identity
from jobs.store.migrate import upgrade
from jobs.store.notify import PgListener

if TYPE_CHECKING:
    from fleet.simulator.server import RunningSimulator

log = structlog.get_logger("fleet.service")

REAP_SHARED = 2.0
"""Seconds between reaps on PostgreSQL, where a dead replica is seen at once (its lock is gone)."""


@dataclass
class Fleet:
    settings: Settings
    store: SqlJobStore
    limiter: RateLimiter
    drivers: Mapping[str, Driver]
    runtime: Runtime
    operations: Operations
    simulator_url: str | None = None
    policies: PolicyService | None = None
    credentials: CredentialChecks | None = None  # each endpoint's credential state (/readyz)
    webhooks: WebhookService | None = None  # subscriptions, the delivery log, test sends
    # the lock of the name this process's work and budget rows carry: the engine's worker name,
    # or on PostgreSQL a process without an engine's own name for its budget rows (D81)
    identity: WorkerLock | None = None
    runs_engine: bool = True  # False: `fleet serve --role api`, another process runs the engine
    # with the policies disabled, who exports the database-wide metrics (`fleet.api.metrics`)
    totals_leader: Leadership | None = None
    admission: Admission = field(init=False)  # the one door every request to act goes through

    def __post_init__(self) -> None:
        self.admission = admission_for(self.settings, self.drivers)


def admission_for(settings: Settings, drivers: Mapping[str, Driver]) -> Admission:
    spec = settings.approvals
    return Admission(
        drivers,
        ceiling=lambda names: configured_guard(settings, names),
        delete_guard=delete_guard(settings),
        approvals=ApprovalConfig(
            deletes_beyond_guard=spec.deletes_beyond_guard,
            max_servers=spec.max_servers,
            endpoints=frozenset(spec.endpoints),
            window_seconds=spec.window_seconds,
        ),
        create_ceiling=settings.guards.create.max_servers,
    )


def policy_paths(patterns: Sequence[str]) -> list[Path]:
    """The policy files named in settings (globs expanded, `*.example.toml` never loaded)."""
    out: list[Path] = []
    for pattern in patterns:
        matches = (
            sorted(Path().glob(pattern)) if any(c in pattern for c in "*?[") else [Path(pattern)]
        )
        out += [p for p in matches if not p.name.endswith(".example.toml")]
    return out


def load_policies(settings: Settings, endpoints: Sequence[str]) -> PolicySet:
    """The configured policy files; a bad one is a SettingsError naming the file and the field."""
    try:
        return load_policy_files(policy_paths(settings.policies.files), endpoints=set(endpoints))
    except PolicyError as exc:
        raise SettingsError(str(exc)) from None


def preflight(settings: Settings) -> None:
    """What is checked before anything starts (SettingsError, naming the field): every configured
    endpoint's driver configuration with its secrets resolved, and the policy files. Endpoints of
    the embedded simulator get theirs when it runs."""
    for spec in settings.endpoints:
        if not spec.simulator:
            endpoint_config(spec)
    if settings.policies.enabled:
        load_policies(settings, [spec.name for spec in settings.endpoints])


@contextlib.asynccontextmanager
async def _policies(fleet: Fleet, clock: Clock) -> AsyncIterator[PolicyService | None]:
    spec = fleet.settings.policies
    if not spec.enabled:
        yield None
        return
    policies = load_policies(fleet.settings, list(fleet.drivers))
    async with contextlib.AsyncExitStack() as stack:
        running = run_policies(
            fleet,
            policies,
            clock,
            worker=fleet.runtime.config.worker,
            sweep_interval=spec.sweep_interval,
        )
        try:
            service = await stack.enter_async_context(running)
        except PolicyError as exc:  # the door refused a file policy: name its file and field
            raise SettingsError(_in_file(policies, exc)) from None
        yield service


def _in_file(policies: PolicySet, exc: PolicyError) -> str:
    """`policies[i].field: message` of the whole set as `FILE: policies[j].field: message`, j
    counted within that file."""
    head, sep, rest = exc.field.partition("].")
    try:
        index = int(head.removeprefix("policies["))
        name = policies.policies[index].name
    except (ValueError, IndexError):
        return str(exc)
    path = policies.origin.get(name, "")
    local = [p.name for p in policies.policies if policies.origin.get(p.name) == path].index(name)
    return f"{path}: policies[{local}].{rest}: {exc.message}" if sep else str(exc)


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite database file (e.g. `var/` of the default URL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def serve_worker(settings: Settings, flag: str | None = None) -> str | None:
    """The worker name of `fleet serve`: `--worker`, else `engine.worker`, else the host name and
    the API port (stable across restarts, distinct between replicas on one host). With `port = 0`
    the port is not known yet and not stable: None (the host name and the process id)."""
    if flag or settings.engine.worker:
        return flag or settings.engine.worker
    port = settings.service.port
    return f"{socket.gethostname()}:{port}" if port else None


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def budget_worker(worker: str) -> str:
    """The name a process without an engine (`fleet serve --role api`) writes its shared-budget
    rows under, and whose lock it holds while it may write them (D81): its own for this process's
    life, so that two such processes, or such a process and an engine, never share one. The `/`
    is not allowed in a configured worker name, so no engine can ever be given it."""
    return f"{worker[:160]}/api-{os.getpid()}-{secrets.token_hex(4)}"


def engine_config(settings: Settings, worker: str | None) -> EngineConfig:
    """The engine's knobs from settings. On PostgreSQL the reaper looks every 2 s for replicas
    that died (their name's lock is gone), so their work is taken over within seconds."""
    e = settings.engine
    return EngineConfig(
        reap_interval=REAP_SHARED if is_postgres(settings.database.url) else 15.0,
        worker=worker or e.worker or f"{socket.gethostname()}-{os.getpid()}",
        lease_ttl=e.lease_seconds,
        poll_interval=e.poll_interval,
        drain_grace=e.drain_grace,
        dispatch_idle=min(0.25, e.idle_interval),
        poll_idle=e.idle_interval,
        listen_idle=e.fallback_interval,
        retry=RetryPolicy(max_attempts=e.max_attempts),
        throttle_deadlines={
            f"{spec.name}:": spec.throttle_deadline_seconds for spec in settings.endpoints
        },
    )


@contextlib.asynccontextmanager
async def _simulator(settings: Settings) -> AsyncIterator[RunningSimulator | None]:
    if not settings.simulator.enabled:
        yield None
        return
    from fleet.simulator.server import start_simulator
    from fleet.simulator.worldgen import load_spec

    sim = settings.simulator
    spec = load_spec(sim.world, seed=sim.seed, speed=sim.speed)
    async with start_simulator(spec, host=sim.host, port=sim.port) as running:
        log.info("simulator_started", url=running.base_url)
        yield running


def _action_seconds(
    settings: Settings, sim: RunningSimulator | None
) -> dict[str, dict[str, float]]:
    """Per endpoint, the action durations the ETA assumes: the simulator's own for its endpoints,
    then the endpoint's `action_seconds`."""
    simulated = {} if sim is None else sim.real_seconds()
    return {
        spec.name: {
            **(simulated if spec.simulator else {}),
            **{action.value: seconds for action, seconds in spec.action_seconds.items()},
        }
        for spec in settings.endpoints
    }


@contextlib.asynccontextmanager
async def _drivers(
    settings: Settings, limiter: RateLimiter, sim: SimEndpoints | None
) -> AsyncIterator[dict[str, Driver]]:
    drivers: dict[str, Driver] = {}
    async with contextlib.AsyncExitStack() as stack:
        for spec in settings.endpoints:
            config = endpoint_config(spec, sim)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=config.connection_limit))
            )
            driver = create_driver(config, session, LimiterGate(spec.name, limiter))
            configure_endpoint(
                limiter, spec.name, driver.capabilities.budgets, budget_overrides(spec)
            )
            drivers[spec.name] = driver
        # What each cloud serves (an OpenStack endpoint's microversion and tag API), read before
        # anything reads the capabilities; a cloud slow to answer is waited for a few seconds.
        pending = await discover_all(drivers)
        try:
            yield drivers
        finally:
            for task in pending.values():
                task.cancel()
            await asyncio.gather(*pending.values(), return_exceptions=True)


def _engine_identity(
    url: str, worker: str, held: WorkerLock | None
) -> contextlib.AbstractAsyncContextManager[WorkerLock]:
    """The engine's worker-name lock: the one already held for its budget rows (PostgreSQL), or
    taken now (SQLite)."""
    return worker_identity(url, worker) if held is None else contextlib.nullcontext(held)


@contextlib.asynccontextmanager
async def open_fleet(
    settings: Settings,
    *,
    clock: Clock | None = None,
    worker: str | None = None,
    migrate: bool = True,
    run_engine: bool = True,
    engine: bool = True,
) -> AsyncIterator[Fleet]:
    """Everything fleet needs to run, started; closed in reverse order on exit. `engine=False`
    (`fleet serve --role api`) starts the policies but not the engine, nor takes a worker name:
    another process (`--role engine`, `fleet worker`) runs the operations this one creates.
    `run_engine=False` starts neither. On PostgreSQL every process holds the lock of the name
    its budget rows carry for as long as it may write them: an engine its worker name's, any
    other process a name of its own (`budget_worker`)."""
    clock = clock or SystemClock()
    ensure_sqlite_dir(settings.database.url)
    if migrate:
        await asyncio.to_thread(upgrade, settings.database.url)
    config = engine_config(settings, worker)
    shared = is_postgres(settings.database.url)
    # on PostgreSQL every engine, and every process writing budget rows, holds its name's lock
    # (worker_identity): the reaper may trust it
    store = SqlJobStore(settings.database.url, locked_workers=shared and run_engine)
    name = config.worker if run_engine and engine else budget_worker(config.worker)
    ledger = SqlLedger(store.db, name, clock) if shared else None
    limiter = RateLimiter(clock) if ledger is None else SharedRateLimiter(clock, ledger)
    checks: CredentialChecks | None = None
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(store.close)
        held: WorkerLock | None = None
        if ledger is not None:
            # the reaper ends the budget rows of a name whose lock nobody holds: hold it from
            # before the first grant (the drivers' discovery) until the rows are ended (D81)
            held = await stack.enter_async_context(worker_identity(settings.database.url, name))
            stack.push_async_callback(ledger.close)
            await ledger.open()  # a killed previous life's rows in flight end, before any grant
        sim = await stack.enter_async_context(_simulator(settings))
        drivers = await stack.enter_async_context(
            _drivers(settings, limiter, None if sim is None else sim.endpoints)
        )
        store.db.listen(on_engine_events)  # the webhook outbox, in the engine's transactions
        try:
            runtime = Runtime(
                store,
                FleetPlanner(drivers),
                FleetExecutor(drivers, action_seconds=_action_seconds(settings, sim)),
                limiter,
                clock=clock,
                config=config,
                observe=listening,  # a planning's listing calls tell why they wait
                # other replicas' word of new work (LISTEN): idle loops look rarely themselves
                wakeups=PgListener(settings.database.url) if shared else None,
            )
            operations = Operations(
                store, clock, on_created=runtime.wake_planner, on_changed=runtime.wake
            )
            sim_url = None if sim is None else sim.base_url
            fleet = Fleet(settings, store, limiter, drivers, runtime, operations, sim_url)
            fleet.totals_leader = leadership_for(settings.database.url, TOTALS_KEY)
            stack.push_async_callback(fleet.totals_leader.release)
            fleet.credentials = checks = CredentialChecks(drivers)
            hooks = WebhookStore(store.db)
            fleet.webhooks = WebhookService(hooks, clock, settings.webhooks, list(drivers))
            fleet.runs_engine = run_engine and engine
            fleet.identity = held
            if not run_engine:
                yield fleet
                return
            if not engine:
                async with _policies(fleet, clock) as policy_service:
                    fleet.policies = policy_service
                    yield fleet
                return
            async with (
                _engine_identity(settings.database.url, runtime.config.worker, held) as identity,
                runtime,
                _policies(fleet, clock) as policy_service,
                running_relay(hooks, clock, runtime.config.worker, settings.webhooks) as sender,
            ):
                fleet.identity = identity
                fleet.policies = policy_service
                fleet.webhooks.sender = sender
                yield fleet
        finally:
            if checks is not None:
                await checks.close()
