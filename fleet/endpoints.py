"""Endpoint settings -> driver configuration (from the settings file, clouds.yaml or the simulator)."""

from __future__ import annotations

from collections.abc import Mapping

from fleet.domain import Provider
from fleet.drivers.base import BudgetUnit, RateBudget
from fleet.drivers.config import (
    AkSkCredentials,
    ConfigError,
    Credentials,
    EndpointConfig,
    PasswordCredentials,
    Secret,
    SecretRef,
    check_secrets,
)
from fleet.drivers.nova.clouds import endpoint_from_cloud
from fleet.settings import CredentialSpec, EndpointSpec, SettingsError

SimEndpoints = Mapping[str, Mapping[str, str]]  # the simulator's /_sim/endpoints document


def _credentials(name: str, spec: CredentialSpec) -> Credentials:
    if spec.kind == "aksk":
        return AkSkCredentials(
            ak=SecretRef(env=spec.ak_env, file=spec.ak_file),
            sk=SecretRef(env=spec.sk_env, file=spec.sk_file),
        )
    if spec.kind == "password":
        return PasswordCredentials(
            username=spec.username,
            user_id=spec.user_id,
            password=SecretRef(env=spec.password_env, file=spec.password_file),
            user_domain_name=spec.user_domain_name,
            project_domain_name=spec.project_domain_name,
        )
    raise SettingsError(
        f"endpoints[{name}].credentials: give ak_env/sk_env (or *_file) or password_env"
    )


def _from_simulator(spec: EndpointSpec, sim: SimEndpoints) -> EndpointConfig:
    if spec.provider is Provider.OPENSTACK:
        os_ = sim["openstack"]
        return EndpointConfig(
            name=spec.name,
            provider=spec.provider,
            credentials=PasswordCredentials(
                username=os_["username"],
                password=Secret(os_["password"]),
                user_domain_name=os_["user_domain_name"],
                project_domain_name=os_["project_domain_name"],
            ),
            region=os_["region_name"],
            project_name=os_["project_name"],
            auth_url=os_["auth_url"],
            flavour=spec.flavour,
            timeout=spec.timeout,
            connection_limit=spec.connection_limit,
        )
    hw = sim["huawei"]
    return EndpointConfig(
        name=spec.name,
        provider=spec.provider,
        credentials=AkSkCredentials(ak=Secret(hw["ak"]), sk=Secret(hw["sk"])),
        region=hw["region"],
        project_id=hw["project_id"],
        iam_url=hw["iam_url"],
        ecs_url=hw["ecs_url"],
        bms_url=hw["bms_url"],
        timeout=spec.timeout,
        connection_limit=spec.connection_limit,
    )


def endpoint_config(spec: EndpointSpec, sim: SimEndpoints | None = None) -> EndpointConfig:
    """The driver configuration of one endpoint, every secret resolved once (a missing variable
    or file stops the start); raises SettingsError naming the endpoint."""
    config = _endpoint_config(spec, sim)
    try:
        check_secrets(config.credentials)
    except ConfigError as exc:
        raise SettingsError(f"endpoints[{spec.name}].{exc}") from None
    return config


def _endpoint_config(spec: EndpointSpec, sim: SimEndpoints | None) -> EndpointConfig:
    try:
        if spec.simulator:
            if sim is None:
                raise SettingsError(
                    f"endpoints[{spec.name}].simulator: the simulator is not running"
                )
            return _from_simulator(spec, sim)
        if spec.cloud is not None:
            return endpoint_from_cloud(
                spec.name,
                spec.cloud,
                flavour=spec.flavour,
                timeout=spec.timeout,
                connection_limit=spec.connection_limit,
            )
        return EndpointConfig(
            name=spec.name,
            provider=spec.provider,
            credentials=_credentials(spec.name, spec.credentials),
            region=spec.region,
            project_id=spec.project_id,
            project_name=spec.project_name,
            iam_url=spec.iam_url,
            ecs_url=spec.ecs_url,
            bms_url=spec.bms_url,
            auth_url=spec.auth_url,
            compute_url=spec.compute_url,
            interface=spec.interface,
            flavour=spec.flavour,
            timeout=spec.timeout,
            connection_limit=spec.connection_limit,
        )
    except ConfigError as exc:
        raise SettingsError(f"endpoints[{spec.name}]: {exc}") from None


def budget_overrides(spec: EndpointSpec) -> dict[str, tuple[RateBudget, ...]]:
    return {
        api_class: tuple(RateBudget(b.limit, b.period, BudgetUnit(b.unit)) for b in budgets)
        for api_class, budgets in spec.budgets.items()
    }
