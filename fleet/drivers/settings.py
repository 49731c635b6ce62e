"""What every endpoint's settings have in common; each provider's class (next to its driver) adds
its own keys and builds its driver's `EndpointConfig`.

`fleet.drivers.registry.EndpointSettings` is the union of the providers' classes, told apart by
`provider`: a key that is not one of that provider's is refused, naming the field.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, model_validator

from fleet.domain import Action, Provider
from fleet.drivers.config import ConfigError, EndpointConfig, PasswordCredentials, SecretRef

SimEndpoints = Mapping[str, Mapping[str, str]]
"""The embedded simulator's `/_sim/endpoints` document: per dialect, its URLs and credentials."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetSpec(Strict):
    """At most `limit` units in any window of `period` seconds."""

    limit: int = Field(ge=1)
    period: float = Field(default=60.0, gt=0)
    unit: Literal["requests", "servers"] = "requests"


_SECRET_FIELDS = ("password", "ak", "sk", "token", "secret")


class PasswordSpec(Strict):
    """A user and where the password is (never the password): `password_env` names a variable,
    `password_file` a file."""

    username: str | None = None
    user_id: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    user_domain_name: str | None = None
    project_domain_name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secrets(cls, data: object) -> object:
        if isinstance(data, Mapping):
            for name in _SECRET_FIELDS:
                if name in data:
                    raise ValueError(
                        f"{name}: secrets are never read from configuration files; "
                        f"use {name}_env (an environment variable's name) or {name}_file"
                    )
        return data

    @property
    def kind(self) -> Literal["aksk", "password", "none"]:
        return "password" if self.password_env or self.password_file else "none"

    def password_credentials(self) -> PasswordCredentials:
        if self.kind == "none":
            raise ConfigError("credentials: give password_env (or password_file)")
        return PasswordCredentials(
            username=self.username,
            user_id=self.user_id,
            password=SecretRef(env=self.password_env, file=self.password_file),
            user_domain_name=self.user_domain_name,
            project_domain_name=self.project_domain_name,
        )


class EndpointSettingsBase(Strict, ABC):
    """One cloud endpoint. `simulator = true` takes URLs and credentials from the embedded
    simulator. Subclasses declare `provider` as a `Literal` of their own provider."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    provider: Provider
    simulator: bool = False
    region: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    connection_limit: int = Field(default=16, ge=1, le=1000)
    budgets: dict[str, list[BudgetSpec]] = Field(default_factory=dict)
    max_servers: int | None = Field(default=None, ge=1)
    max_percent: float | None = Field(default=None, gt=0, le=100)
    # Seconds an action takes on this cloud until the server settles (the plan's ETA; defaults
    # in the drivers' declarations (fleet/drivers/actions.py), or the simulator's own durations).
    action_seconds: dict[Action, NonNegativeFloat] = Field(default_factory=dict)
    # The longest a sub-job may keep being throttled by this endpoint before it fails with the
    # cloud's code and "throttled for longer than ..." (jobs.retry).
    throttle_deadline_seconds: float = Field(default=900.0, gt=0)

    @property
    def variant(self) -> str | None:
        """The dialect's variant within its provider (an OpenStack `flavour`), if it has any."""
        return None

    def driver_config(self, sim: SimEndpoints | None = None) -> EndpointConfig:
        """The driver's configuration: from the embedded simulator's document when `simulator`
        is set, else from these settings. Raises ConfigError (secrets are not resolved here)."""
        if not self.simulator:
            return self.from_settings()
        if sim is None:
            raise ConfigError("simulator: the simulator is not running")
        return self.from_simulator(sim)

    @abstractmethod
    def from_settings(self) -> EndpointConfig: ...

    @abstractmethod
    def from_simulator(self, sim: SimEndpoints) -> EndpointConfig: ...
