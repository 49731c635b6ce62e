"""Nova `POST /servers` (upstream, and EasyStack seed §1.4): one server per call.

Microversion 2.52 is sent with a create (create-time `tags`, a list of strings, from 2.52; the
seed recommends 2.67, which changes nothing fleet sends). The body names `name`, `flavorRef`,
`imageRef`, `networks` [{`uuid`}], `availability_zone`, `tags` ("key=value" strings, as fleet
writes 2D tags on Nova), and `key_name` / `adminPass` when given. The answer is 202 `{"server":
{"id", "links", "adminPass", ...}}`: only the id is read (the password is never kept).
Limits: `GET /limits` -> `absolute.maxTotalInstances` and `totalInstancesUsed`.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet.domain import tag_to_1d
from fleet.drivers.base import CreateRequest, Quota
from fleet.drivers.jsonutil import as_dict, opt_str

CREATE, LIMITS = "create", "limits"
CREATE_MICROVERSION = "2.52"
CREATE_HEADERS: Mapping[str, str] = {"X-OpenStack-Nova-API-Version": CREATE_MICROVERSION}
MAX_TAGS = 50  # Nova's limit of tags per server


def create_body(request: CreateRequest) -> dict[str, object]:
    server: dict[str, object] = {
        "name": request.name,
        "flavorRef": request.flavor,
        "imageRef": request.image,
        "networks": [{"uuid": request.network}],
        "tags": [tag_to_1d(k, v) for k, v in request.tags.items()],
    }
    if request.availability_zone:
        server["availability_zone"] = request.availability_zone
    if request.key_name:
        server["key_name"] = request.key_name
    if request.admin_password:
        server["adminPass"] = request.admin_password
    return {"server": server}


def created_id(data: object) -> str | None:
    return opt_str(as_dict(as_dict(data).get("server")).get("id"))


def parse_limits(data: object) -> Quota | None:
    absolute = as_dict(as_dict(as_dict(data).get("limits")).get("absolute"))
    limit, used = absolute.get("maxTotalInstances"), absolute.get("totalInstancesUsed")
    if isinstance(limit, int) and isinstance(used, int) and limit >= 0:
        return Quota(used=used, limit=limit)
    return None
