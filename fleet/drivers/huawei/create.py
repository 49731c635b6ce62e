"""Huawei server creation: ECS `POST /v1/{project_id}/cloudservers` and BMS
`POST /v1/{project_id}/baremetalservers`, one call for up to `count` servers, answered with a job.

ECS (seed 001 §5.1.1): `imageRef`, `flavorRef`, `name`, `vpcid`, `nics` [{`subnet_id`}] and
`root_volume` [`volumetype`] are mandatory; `count` at most 500; with `count` > 1 the cloud names
the servers `name-0001`, `name-0002`, ... (a base name of at most 59 characters); `server_tags`
as a list of `{key, value}` (at most 10). The answer is `{"job_id", "serverIds"}`.
BMS (seed 003): also `availability_zone`, `metadata.op_svc_userid` and `extendparam` mandatory;
`count` at most 24 (a base name of at most 58 characters with `count` > 1); at most 9 tags;
answer `{"order_id", "job_id"}`; 50 create calls per minute (seed 000).

Limits: ECS `GET /v1/{project_id}/cloudservers/limits` and BMS `GET /v1/{project_id}/
baremetalservers/limits` (seed 000; the SDK's `ShowTenantQuotaResponse`), both
`absolute.maxTotalInstances` and `totalInstancesUsed`; the cloud still refuses a create the quota
cannot hold (`Ecs.0001`) when others took the room after admission.
"""

from __future__ import annotations

from fleet.domain import ActionParams
from fleet.drivers.base import CreateRequest, Quota
from fleet.drivers.errors import Unsupported
from fleet.drivers.jsonutil import as_dict

CREATE, LIMITS = "create", "limits"
ECS_MAX_COUNT, BMS_MAX_COUNT = 500, 24
ECS_MAX_TAGS, BMS_MAX_TAGS = 10, 9
ROOT_VOLUME_TYPE = "SSD"  # the one root volume type every Huawei region offers
OP_SVC_USERID = "fleet"  # BMS `metadata.op_svc_userid`: the user the servers are created for


def check_create(params: ActionParams, *, max_tags: int, needs_zone: bool) -> None:
    """What a Huawei create needs beyond the common fields, naming the field; one tag of the
    cloud's limit is the operation's identity tag."""
    create = params.create
    if create is None:
        raise Unsupported("a create needs its parameters", field="params")
    if not create.vpc:
        raise Unsupported("a Huawei create needs the VPC id of the subnet", field="params.vpc")
    if needs_zone and not create.availability_zone:
        raise Unsupported(
            "a BMS create needs its availability zone", field="params.availability_zone"
        )
    if len(params.tags) > max_tags - 1:
        raise Unsupported(
            f"at most {max_tags - 1} tags (the cloud takes {max_tags}, one is fleet-op)",
            field="params.tags",
        )


def _server(request: CreateRequest) -> dict[str, object]:
    server: dict[str, object] = {
        "name": request.name,
        "imageRef": request.image,
        "flavorRef": request.flavor,
        "vpcid": request.vpc or "",
        "nics": [{"subnet_id": request.network}],
        "count": request.count,
        "server_tags": [{"key": k, "value": v} for k, v in request.tags.items()],
    }
    if request.availability_zone:
        server["availability_zone"] = request.availability_zone
    if request.key_name:
        server["key_name"] = request.key_name
    if request.admin_password:
        server["adminPass"] = request.admin_password
    return server


def ecs_body(request: CreateRequest) -> dict[str, object]:
    server = _server(request)
    server["root_volume"] = {"volumetype": ROOT_VOLUME_TYPE}
    return {"server": server}


def bms_body(request: CreateRequest) -> dict[str, object]:
    server = _server(request)
    server["metadata"] = {"op_svc_userid": OP_SVC_USERID}
    server["extendparam"] = {"chargingMode": "postPaid"}
    return {"server": server}


def parse_limits(data: object) -> Quota | None:
    absolute = as_dict(as_dict(data).get("absolute"))
    limit, used = absolute.get("maxTotalInstances"), absolute.get("totalInstancesUsed")
    if isinstance(limit, int) and isinstance(used, int) and limit >= 0:
        return Quota(used=used, limit=limit)
    return None
