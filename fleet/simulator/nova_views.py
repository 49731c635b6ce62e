"""Nova JSON bodies: servers (microversion-gated fields), flavors and the version documents.

Field sets follow the digest's examples (§2.2.3 Huawei at 2.26, §2.4 EasyStack show/recycle bin):
`tags` from 2.26, `locked` from 2.9, `host_status` from 2.16, `description` from 2.19, the 2.3
`OS-EXT-SRV-ATTR:*` fields, and the flavor shape switch at 2.47 (`{"id", "links"}` before, the
embedded flavor with `original_name` from 2.47; EasyStack's example keeps `id` in it). Values the
world does not model (addresses, hosts, volumes) are derived from the server id so that they are
stable across calls. Huawei documents power state 3 as "shutdown" (digest §2.2.3) while Nova and
EasyStack use 4, so a stopped server reports 3 on the Huawei surface.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import datetime

from fleet.simulator import huawei_iam
from fleet.simulator.keystone import user_id as keystone_user_id
from fleet.simulator.nova_base import MIN_VERSION, Call, Surface, show_version
from fleet.simulator.nova_tags import one_d
from fleet.simulator.world import BMS, Flavor, Server, iso

_HUAWEI_POWER = {4: 3}  # Nova SHUTDOWN (4) is Huawei's "3: shutdown"


def _digest(server: Server) -> bytes:
    return _id_digest(server.id)


@functools.lru_cache(maxsize=65536)
def _id_digest(server_id: str) -> bytes:
    """Per-server stable bytes (MAC, IP, host, volume id); a listing needs them five times per
    server, for thousands of servers."""
    return hashlib.sha256(server_id.encode()).digest()


@functools.lru_cache(maxsize=65536)
def _usec(dt: datetime | None) -> str | None:
    return None if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%S.%f")


def links(call: Call, collection: str, item_id: str) -> list[dict[str, str]]:
    """`self` (versioned) and `bookmark` (unversioned) links, as Nova writes them."""
    return [
        {"rel": "self", "href": f"{call.versioned}/{collection}/{item_id}"},
        {"rel": "bookmark", "href": f"{call.unversioned}/{collection}/{item_id}"},
    ]


def _bookmark(call: Call, collection: str, item_id: str) -> list[dict[str, str]]:
    return [{"rel": "bookmark", "href": f"{call.unversioned}/{collection}/{item_id}"}]


def _addresses(call: Call, server: Server) -> dict[str, object]:
    d = _digest(server)
    mac = "fa:16:3e:" + d[:3].hex(":")
    network = "share_net" if call.surface.recycle_bin else _uuids(server.id)[1]
    if server.deleted_at is not None:
        return {}
    return {
        network: [
            {
                "OS-EXT-IPS-MAC:mac_addr": mac,
                "OS-EXT-IPS:type": "fixed",
                "addr": f"192.168.{d[3] % 250 + 1}.{d[4] % 250 + 2}",
                "version": 4,
            }
        ]
    }


def flavor_ref(call: Call, server: Server) -> dict[str, object]:
    """The server's flavor: `{"id", "links"}` before 2.47, embedded from 2.47."""
    flavor = call.ctx.world.flavors.get(server.flavor_id)
    if not call.at_least(2, 47) or flavor is None:
        return {"id": server.flavor_id, "links": _bookmark(call, "flavors", server.flavor_id)}
    body: dict[str, object] = {}
    if call.surface.embedded_flavor_id:
        body["id"] = flavor.id
    body.update(
        vcpus=flavor.vcpus,
        ram=flavor.ram,
        disk=flavor.disk,
        ephemeral=0,
        swap=0,
        original_name=flavor.name,
        extra_specs={"baremetal": "true"} if flavor.kind == BMS else {},
    )
    return body


def _power(call: Call, server: Server) -> int:
    if call.surface.name == "huawei":
        return _HUAWEI_POWER.get(server.power_state, server.power_state)
    return server.power_state


def _vm_state(server: Server) -> str:
    """BMSs report `shutoff` where ECSs report `stopped` ([S2] vs [S1], digest A-5)."""
    if server.kind == BMS and server.vm_state == "stopped":
        return "shutoff"
    return server.vm_state


def _host(server: Server) -> str | None:
    if server.deleted_at is not None:
        return None
    return host_of(server.id)


def host_of(server_id: str) -> str:
    """The compute host a server runs on (stable per server id)."""
    return f"node-{_id_digest(server_id)[5] % 8 + 1}.domain.tld"


def _base_fields(call: Call, server: Server) -> dict[str, object]:
    host = _host(server)
    return {
        "id": server.id,
        "name": server.name,
        "status": server.status,
        "tenant_id": server.project_id,
        "user_id": _user(call),
        "metadata": dict(server.metadata),
        "hostId": "" if host is None else host_id(server.project_id, host),
        "image": {"id": server.image_id, "links": _bookmark(call, "images", server.image_id)},
        "flavor": flavor_ref(call, server),
        "created": iso(server.created),
        "updated": iso(server.updated),
        "addresses": _addresses(call, server),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(call, "servers", server.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": server.availability_zone,
        "config_drive": "",
        "key_name": None,
        "OS-SRV-USG:launched_at": _usec(server.created),
        "OS-SRV-USG:terminated_at": _usec(server.deleted_at),
        "security_groups": [{"name": "default"}],
        "OS-EXT-SRV-ATTR:host": host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{int.from_bytes(_digest(server)[:3]):08x}",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": host,
        "OS-EXT-STS:task_state": server.task_state,
        "OS-EXT-STS:vm_state": _vm_state(server),
        "OS-EXT-STS:power_state": _power(call, server),
        "os-extended-volumes:volumes_attached": (
            [] if server.deleted_at is not None else _volumes(call, server)
        ),
    }


@functools.lru_cache(maxsize=4096)
def host_id(project_id: str, host: str) -> str:
    """Nova's `hostId`: sha224 of project id and host, so it is opaque but stable per project."""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def _user(call: Call) -> str:
    """The id of the user the token was issued to (IAM's on Huawei, Keystone's on OpenStack)."""
    if call.surface.name == "huawei":
        return huawei_iam.user_id(call.ctx)
    return keystone_user_id(call.ctx)


@functools.lru_cache(maxsize=65536)
def _uuids(server_id: str) -> tuple[str, str]:
    """The server's stable volume id and network id."""
    d = _id_digest(server_id)
    return str(uuid.UUID(bytes=d[:16])), str(uuid.UUID(bytes=d[16:32]))


def _volumes(call: Call, server: Server) -> list[dict[str, object]]:
    volume: dict[str, object] = {"id": _uuids(server.id)[0]}
    if call.at_least(2, 3):
        volume["delete_on_termination"] = True
    return [volume]


def _gated_fields(call: Call, server: Server, body: dict[str, object]) -> None:
    """Fields added by microversions (digest §1.2)."""
    if call.at_least(2, 3):
        body.update(
            {
                "OS-EXT-SRV-ATTR:hostname": server.name.lower(),
                "OS-EXT-SRV-ATTR:reservation_id": "r-" + server.id[:8],
                "OS-EXT-SRV-ATTR:launch_index": 0,
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                "OS-EXT-SRV-ATTR:user_data": None,
            }
        )
    if call.at_least(2, 9):
        body["locked"] = server.locked
    if call.at_least(2, 16):
        body["host_status"] = "" if server.deleted_at is not None else "UP"
    if call.at_least(2, 19):
        body["description"] = None
    if call.at_least(2, 26):
        body["tags"] = one_d(server, with_reserved=call.surface.tag_api)
    if call.at_least(2, 63):
        body["trusted_image_certificates"] = None
    if call.at_least(2, 73):
        body["locked_reason"] = None
    if call.at_least(2, 96):
        body["pinned_availability_zone"] = None


def server_body(call: Call, server: Server) -> dict[str, object]:
    """One server as `GET /servers/{id}` and `GET /servers/detail` show it."""
    body = _base_fields(call, server)
    _gated_fields(call, server, body)
    if call.surface.recycle_bin:
        body["deleted"] = "" if server.deleted_at is None else iso(server.deleted_at)
        body["estimated_deleted"] = ""
    if server.fault is not None:
        body["fault"] = dict(server.fault)
    return body


def server_brief(call: Call, server: Server) -> dict[str, object]:
    """One server as `GET /servers` shows it: id, name, links."""
    return {"id": server.id, "name": server.name, "links": links(call, "servers", server.id)}


def flavor_body(call: Call, flavor: Flavor, *, detail: bool) -> dict[str, object]:
    """A flavor as `/flavors` (id, name, links) or `/flavors/detail` shows it."""
    body: dict[str, object] = {
        "id": flavor.id,
        "name": flavor.name,
        "links": links(call, "flavors", flavor.id),
    }
    if not detail:
        return body
    body.update(
        {
            "vcpus": flavor.vcpus,
            "ram": flavor.ram,
            "disk": flavor.disk,
            "swap": 0 if call.at_least(2, 75) else "",
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": True,
            "rxtx_factor": 1.0,
        }
    )
    if call.at_least(2, 55):
        body["description"] = None
    if call.at_least(2, 61):
        body["extra_specs"] = {"baremetal": "true"} if flavor.kind == BMS else {}
    return body


def version_entry(surface: Surface, href: str) -> dict[str, object]:
    """The v2.1 entry of a version document (digest §1.2: `version` max, `min_version`)."""
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": show_version(surface.max_version),
        "min_version": show_version(MIN_VERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [
            {"rel": "self", "href": href},
            {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
        ],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


def legacy_v2_entry(href: str) -> dict[str, object]:
    """Huawei's `GET /` also lists v2.0 as SUPPORTED with empty version fields ([S1] §6.1.1)."""
    return {
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": href}],
    }
