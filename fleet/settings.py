"""Configuration: `config/*.toml` files plus `FLEET_*` environment overrides, validated at start.

Files are merged in order (later files override earlier ones, table by table), then environment
variables `FLEET_<SECTION>__<KEY>` override single values (e.g. `FLEET_DATABASE__URL`,
`FLEET_SERVICE__PORT`). Every error names the field (`endpoints[1].provider: ...`); a key
that is not one of the endpoint's provider is refused (`endpoints[0].flavour: not a key of huawei-ecs`).

Secrets never live in these files: an endpoint's credentials name the environment variable or the
file that holds each secret (`password_env`, `sk_file`, ...). A literal `password = "..."` is refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fleet.domain import Provider
from fleet.drivers.registry import EndpointSettings
from fleet.drivers.settings import EndpointSettingsBase
from jobs.errors import InvalidSpec
from jobs.strategy import BlastRadius, stricter

EndpointSpec = EndpointSettings
"""One `[[endpoints]]` table, by its `provider` (the classes live next to their drivers)."""


class SettingsError(ValueError):
    """Configuration that cannot work; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSpec(_Strict):
    url: str = "sqlite+aiosqlite:///var/fleet.db"


class ServiceSpec(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # seconds a connection with no request in progress stays open (fleet.api.connections)
    keepalive_timeout: float = Field(default=75.0, gt=0)
    # seconds a client has to send a request's line and headers (fleet.api.connections)
    header_timeout: float = Field(default=10.0, gt=0)
    # requests authenticated and handled at once; the others wait their turn (fleet.api.limits)
    max_requests: int = Field(default=16, ge=1)
    # open event streams per token; one more is 429 (fleet.api.limits)
    max_streams_per_token: int = Field(default=16, ge=1)


WORKER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$"
"""A worker's name: letters, digits and `_ . : @ -`, at most 200 characters."""


class EngineSpec(_Strict):
    # This process's worker name (`fleet serve --worker`); None: `fleet serve` takes the host
    # name and the API port, `fleet worker` the host name and the process id (fleet.service).
    worker: str | None = Field(default=None, pattern=WORKER_NAME)
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_interval: float = Field(default=2.0, gt=0)
    idle_interval: float = Field(default=0.5, gt=0)
    # PostgreSQL: replicas wake each other's loops when work appears (LISTEN/NOTIFY); while that
    # works, a loop with nothing to do looks by itself only this often (the fallback)
    fallback_interval: float = Field(default=5.0, gt=0)
    drain_grace: float = Field(default=10.0, ge=0)
    max_attempts: int = Field(default=8, ge=1)


class SimulatorSpec(_Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    seed: int = 1
    speed: float = Field(default=1.0, gt=0)
    world: str | None = None


class PoliciesSpec(_Strict):
    """Scheduled policies: `files` are TOML policy files (globs allowed, relative to the working
    directory); the scheduler runs in the leader only."""

    enabled: bool = True
    files: list[str] = Field(default_factory=lambda: ["config/policies*.toml"])
    sweep_interval: float = Field(default=30.0, gt=0)


class WebhooksSpec(_Strict):
    """Webhook delivery (see docs/api.md, "Webhooks"): one replica at a time sends, holding the
    `webhooks` lease; `backoff` is the wait before each retry (seconds), after the last one the
    event is given up; `allowed_hosts`, when not empty, are the only hosts a subscription may
    name (`*.example.com` for a domain and its subdomains); delivered and given-up events older
    than `delivery_log_days` leave the delivery log (pending ones stay until they end)."""

    enabled: bool = True
    poll_interval: float = Field(default=1.0, gt=0, le=5)
    lease_seconds: float = Field(default=15.0, gt=0)
    timeout: float = Field(default=10.0, gt=0, le=60)
    backoff: list[float] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0],
        min_length=1,
    )
    allowed_hosts: list[str] = Field(default_factory=list)
    delivery_log_days: int = Field(default=30, ge=1, le=36500)


class DeleteGuardSpec(_Strict):
    """The blast radius every delete is held to unless an admin's request gives its own guard
    (None: no such limit)."""

    max_servers: int | None = Field(default=10, ge=0)
    max_percent: str | None = "5%"

    @field_validator("max_percent")
    @classmethod
    def _percent(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                BlastRadius.from_json({"max_percent": value})
            except InvalidSpec as exc:
                raise ValueError(exc.message) from None
        return value


class CreateGuardSpec(_Strict):
    """The most servers one create may make on each endpoint it names."""

    max_servers: int = Field(default=500, ge=1)


class GuardsSpec(_Strict):
    delete: DeleteGuardSpec = DeleteGuardSpec()
    create: CreateGuardSpec = CreateGuardSpec()


class PricesSpec(_Strict):
    """What a server costs per hour while it runs, per endpoint and flavor (`"*"`: any other
    flavor of the endpoint), in `currency`: the savings report multiplies the hours fleet kept
    servers stopped by these (`fleet.policies.savings`)."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    hourly: dict[str, dict[str, float]] = Field(default_factory=dict)

    @field_validator("hourly")
    @classmethod
    def _positive(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for endpoint, table in value.items():
            for flavor, price in table.items():
                if price < 0:
                    raise ValueError(f"{endpoint}.{flavor}: a price cannot be negative")
        return value


class TrackingSpec(_Strict):
    """Following what operations did to servers after they finished (`fleet.policies.tracking`):
    the spans servers stayed stopped and drift."""

    # seconds between two reads of the servers fleet stopped (a start by anyone else is found
    # within this long; where the cloud keeps no action history the read is the bound)
    check_interval: float = Field(default=300.0, gt=0)
    # seconds after a stop during which a start by anyone else is drift (0: never)
    drift_window: float = Field(default=43200.0, ge=0)


class ApprovalsSpec(_Strict):
    """Operations that wait for a second token's approval before anything is sent (see
    `jobs.approval`): evaluated on the plan, for every request the door admits (policy fires too)."""

    # a delete beyond [guards.delete] (an admin's request, or a clean-up policy, with a guard of
    # its own) needs approval
    deletes_beyond_guard: bool = True
    max_servers: int | None = Field(default=None, ge=0)  # acting on more needs approval
    endpoints: list[str] = Field(default_factory=list)  # acting on any of their servers needs it
    window_seconds: float = Field(default=86400.0, gt=0)  # then it expires


class LoggingSpec(_Strict):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(_Strict):
    database: DatabaseSpec = DatabaseSpec()
    service: ServiceSpec = ServiceSpec()
    engine: EngineSpec = EngineSpec()
    simulator: SimulatorSpec = SimulatorSpec()
    logging: LoggingSpec = LoggingSpec()
    policies: PoliciesSpec = PoliciesSpec()
    guards: GuardsSpec = GuardsSpec()
    webhooks: WebhooksSpec = WebhooksSpec()
    prices: PricesSpec = PricesSpec()
    tracking: TrackingSpec = TrackingSpec()
    approvals: ApprovalsSpec = ApprovalsSpec()
    endpoints: list[EndpointSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_endpoints(self) -> Settings:
        seen: set[str] = set()
        for i, ep in enumerate(self.endpoints):
            if ep.name in seen:
                raise ValueError(f"endpoints[{i}].name: duplicate endpoint name {ep.name!r}")
            seen.add(ep.name)
            if ep.simulator and not self.simulator.enabled:
                raise ValueError(f"endpoints[{i}].simulator: needs [simulator] enabled = true")
        for name in self.prices.hourly:
            if name not in seen:
                raise ValueError(f"prices.hourly.{name}: not a configured endpoint")
        for i, name in enumerate(self.approvals.endpoints):
            if name not in seen:
                known = ", ".join(sorted(seen)) or "none"
                raise ValueError(
                    f"approvals.endpoints[{i}]: unknown endpoint {name!r}; configured: {known}"
                )
        return self

    def endpoint(self, name: str) -> EndpointSettingsBase:
        for ep in self.endpoints:
            if ep.name == name:
                return ep
        raise KeyError(name)


def _merge(base: dict[str, object], extra: Mapping[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            out[key] = _merge(current, value)
        else:
            out[key] = value
    return out


def _env_overrides(environ: Mapping[str, str]) -> dict[str, object]:
    """`FLEET_SECTION__KEY=value` -> {"section": {"key": value}} (values parsed as TOML if they can be)."""
    out: dict[str, object] = {}
    for name, raw in environ.items():
        if not name.startswith("FLEET_") or "__" not in name:
            continue
        path = [p.lower() for p in name[len("FLEET_") :].split("__")]
        try:
            value: object = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{name}: conflicts with another FLEET_ variable")
            node = child
        node[path[-1]] = value
    return out


_PROVIDERS = tuple(p.value for p in Provider)


def _describe(exc: ValidationError) -> str:
    """One `field: message` per error. An endpoint's errors carry its provider in pydantic's
    location (the union's tag): it is left out of the field and named in the message instead."""
    lines = []
    for err in exc.errors():
        loc, provider = "", None
        for i, part in enumerate(err["loc"]):
            if isinstance(part, int):
                loc += f"[{part}]"
            elif i and isinstance(err["loc"][i - 1], int) and part in _PROVIDERS:
                provider = part
            else:
                loc += f".{part}" if loc else str(part)
        msg = err["msg"]
        if err["type"] == "extra_forbidden" and provider:
            msg = f"not a key of {provider}"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += ".provider"
            msg = "Field required" if "tag" not in err.get("ctx", {}) else _one_of(_PROVIDERS)
        lines.append(f"{loc or 'settings'}: {msg}")
    return "; ".join(lines)


def _one_of(values: Sequence[str]) -> str:
    return "Input should be " + ", ".join(repr(v) for v in values[:-1]) + f" or {values[-1]!r}"


def configured_guard(settings: Settings, endpoints: Sequence[str]) -> BlastRadius | None:
    """The strictest `max_servers`/`max_percent` configured on `endpoints`: the admin's ceiling
    that a request's or a policy's guard may only tighten (`jobs.strategy.stricter`)."""
    specs = [s for s in settings.endpoints if s.name in endpoints]
    return stricter(
        *(
            BlastRadius.from_json({"max_servers": s.max_servers, "max_percent": s.max_percent})
            for s in specs
        )
    )


def delete_guard(settings: Settings) -> BlastRadius | None:
    """The configured delete guard (None when it limits nothing)."""
    spec = settings.guards.delete
    return stricter(
        BlastRadius.from_json({"max_servers": spec.max_servers, "max_percent": spec.max_percent})
    )


_HERE = Path(__file__).resolve().parent
_INSTALLED_DEFAULTS = _HERE / "_config" / "default.toml"
DEFAULT_CONFIG = (
    _INSTALLED_DEFAULTS
    if _INSTALLED_DEFAULTS.is_file()
    else _HERE.parent / "config" / "default.toml"
)
"""The documented defaults: inside the package when installed from a wheel (see pyproject.toml),
`config/default.toml` in a source checkout."""


def load_with_defaults(
    paths: Sequence[str | Path] = (), environ: Mapping[str, str] | None = None
) -> Settings:
    """`load_settings` over the documented defaults, then `paths` (later files win)."""
    base: list[str | Path] = [DEFAULT_CONFIG] if DEFAULT_CONFIG.is_file() else []
    return load_settings([*base, *paths], environ)


def load_settings(
    paths: Sequence[str | Path] = (), environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, merge and validate; raises SettingsError naming every bad field."""
    data: dict[str, object] = {}
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"{path}: cannot be read: {exc.strerror}") from exc
        try:
            data = _merge(data, tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
