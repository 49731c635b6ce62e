"""Endpoint settings -> driver configuration. What each provider needs is its settings class's
business (next to its driver, `fleet.drivers.registry.EndpointSettings`); this module resolves the
secrets once and names the endpoint in every error."""

from __future__ import annotations

import re

from fleet.drivers.base import BudgetUnit, RateBudget
from fleet.drivers.config import ConfigError, EndpointConfig, check_secrets
from fleet.drivers.settings import EndpointSettingsBase, SimEndpoints
from fleet.settings import SettingsError

__all__ = ["SimEndpoints", "budget_overrides", "endpoint_config"]

_NAMES_A_KEY = re.compile(r"^[a-z_][a-z0-9_.]*: ")


def endpoint_config(spec: EndpointSettingsBase, sim: SimEndpoints | None = None) -> EndpointConfig:
    """The driver configuration of one endpoint, every secret resolved once (a missing variable
    or file stops the start); raises SettingsError naming the endpoint."""
    try:
        config = spec.driver_config(sim)
        check_secrets(config.credentials)
    except ConfigError as exc:
        # "credentials: ..." names a key of the endpoint; other messages describe it whole.
        sep = "." if _NAMES_A_KEY.match(str(exc)) else ": "
        raise SettingsError(f"endpoints[{spec.name}]{sep}{exc}") from None
    return config


def budget_overrides(spec: EndpointSettingsBase) -> dict[str, tuple[RateBudget, ...]]:
    return {
        api_class: tuple(RateBudget(b.limit, b.period, BudgetUnit(b.unit)) for b in budgets)
        for api_class, budgets in spec.budgets.items()
    }
