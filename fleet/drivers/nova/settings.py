"""The settings of an `openstack` endpoint (plain Nova or EasyStack, by `flavour`): its keys and
its driver's configuration, from the settings file, a clouds.yaml entry or the embedded
simulator."""

from __future__ import annotations

from typing import Literal

from fleet.domain import Provider
from fleet.drivers.config import EndpointConfig, PasswordCredentials, Secret
from fleet.drivers.nova.clouds import endpoint_from_cloud
from fleet.drivers.settings import EndpointSettingsBase, PasswordSpec, SimEndpoints

SIMULATOR_DIALECT = "openstack"
"""The entry of the simulator's endpoints document that OpenStack endpoints use."""


class OpenStackSettings(EndpointSettingsBase):
    """Keystone v3 at `auth_url` (the compute URL is found in the catalogue unless `compute_url`
    is given), or `cloud`: an entry of a standard clouds.yaml instead of these keys."""

    provider: Literal[Provider.OPENSTACK]
    cloud: str | None = None
    auth_url: str | None = None
    compute_url: str | None = None
    interface: str = "public"
    flavour: Literal["openstack", "easystack"] = "openstack"
    credentials: PasswordSpec = PasswordSpec()

    @property
    def variant(self) -> str | None:
        return self.flavour

    def from_settings(self) -> EndpointConfig:
        if self.cloud is not None:
            return endpoint_from_cloud(
                self.name,
                self.cloud,
                flavour=self.flavour,
                timeout=self.timeout,
                connection_limit=self.connection_limit,
            )
        return EndpointConfig(
            name=self.name,
            provider=self.provider,
            credentials=self.credentials.password_credentials(),
            region=self.region,
            project_id=self.project_id,
            project_name=self.project_name,
            auth_url=self.auth_url,
            compute_url=self.compute_url,
            interface=self.interface,
            flavour=self.flavour,
            timeout=self.timeout,
            connection_limit=self.connection_limit,
        )

    def from_simulator(self, sim: SimEndpoints) -> EndpointConfig:
        os_ = sim[SIMULATOR_DIALECT]
        return EndpointConfig(
            name=self.name,
            provider=self.provider,
            credentials=PasswordCredentials(
                username=os_["username"],
                password=Secret(os_["password"]),
                user_domain_name=os_["user_domain_name"],
                project_domain_name=os_["project_domain_name"],
            ),
            region=os_["region_name"],
            project_name=os_["project_name"],
            auth_url=os_["auth_url"],
            flavour=self.flavour,
            timeout=self.timeout,
            connection_limit=self.connection_limit,
        )
