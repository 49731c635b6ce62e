"""The settings of a Huawei endpoint (`huawei-ecs`, `huawei-bms`): its keys and its driver's
configuration, from the settings file or from the embedded simulator."""

from __future__ import annotations

from typing import Literal

from fleet.domain import Provider
from fleet.drivers.config import (
    AkSkCredentials,
    ConfigError,
    Credentials,
    EndpointConfig,
    Secret,
    SecretRef,
)
from fleet.drivers.settings import EndpointSettingsBase, PasswordSpec, SimEndpoints

SIMULATOR_DIALECT = "huawei"
"""The entry of the simulator's endpoints document that Huawei endpoints use."""


class HuaweiCredentialSpec(PasswordSpec):
    """AK/SK (`ak_env`/`ak_file` + `sk_env`/`sk_file`: requests are signed) or an IAM user and
    password (`user_domain_name` is the account)."""

    ak_env: str | None = None
    ak_file: str | None = None
    sk_env: str | None = None
    sk_file: str | None = None

    @property
    def kind(self) -> Literal["aksk", "password", "none"]:
        if self.ak_env or self.ak_file or self.sk_env or self.sk_file:
            return "aksk"
        return super().kind

    def credentials(self) -> Credentials:
        if self.kind == "aksk":
            return AkSkCredentials(
                ak=SecretRef(env=self.ak_env, file=self.ak_file),
                sk=SecretRef(env=self.sk_env, file=self.sk_file),
            )
        if self.kind == "password":
            return self.password_credentials()
        raise ConfigError("credentials: give ak_env/sk_env (or *_file) or password_env")


class HuaweiSettings(EndpointSettingsBase):
    """Keys of every Huawei endpoint: the IAM, ECS and BMS service URLs."""

    iam_url: str | None = None
    ecs_url: str | None = None
    bms_url: str | None = None
    credentials: HuaweiCredentialSpec = HuaweiCredentialSpec()

    def from_settings(self) -> EndpointConfig:
        return EndpointConfig(
            name=self.name,
            provider=self.provider,
            credentials=self.credentials.credentials(),
            region=self.region,
            project_id=self.project_id,
            project_name=self.project_name,
            iam_url=self.iam_url,
            ecs_url=self.ecs_url,
            bms_url=self.bms_url,
            timeout=self.timeout,
            connection_limit=self.connection_limit,
        )

    def from_simulator(self, sim: SimEndpoints) -> EndpointConfig:
        hw = sim[SIMULATOR_DIALECT]
        return EndpointConfig(
            name=self.name,
            provider=self.provider,
            credentials=AkSkCredentials(ak=Secret(hw["ak"]), sk=Secret(hw["sk"])),
            region=hw["region"],
            project_id=hw["project_id"],
            iam_url=hw["iam_url"],
            ecs_url=hw["ecs_url"],
            bms_url=hw["bms_url"],
            timeout=self.timeout,
            connection_limit=self.connection_limit,
        )


class HuaweiEcsSettings(HuaweiSettings):
    provider: Literal[Provider.HUAWEI_ECS]


class HuaweiBmsSettings(HuaweiSettings):
    provider: Literal[Provider.HUAWEI_BMS]
