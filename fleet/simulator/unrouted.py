"""What a path the simulator does not serve answers: the refusal of the dialect that owns the path.

aiohttp answers an unknown route with a plain-text `404: Not Found` (and a wrong method with
`405: Method Not Allowed`); no cloud client can read an error code out of that (the Huawei SDK
then reports the bare status, "404", as `error_code`). The simulator answers instead, by prefix:

- `/identity`: Keystone's envelope `{"error": {"code": int, "message", "title"}}` (digest §5.1,
  ES-ECS row, which is Keystone's own shape). Messages are Keystone's: "The resource could not be
  found." (404) and "The method is not allowed for the requested URL." (405).
- `/compute`: Nova's named envelope, `{"itemNotFound": {"code": 404, "message": "The resource
  could not be found."}}`, and for a wrong method `{"badMethod": {"code": 405, ...}}` (the names
  Nova's fault wrapper gives those statuses; the EasyStack seed documents no body for them).
- everything else but the `/_sim` control plane is the Huawei endpoint (`/v1`, `/v1.1`, `/v2.1`,
  IAM's `/v3` and any other path), where an unknown route is refused by the API gateway in front
  of every service before any service sees it. The gateway answers in the Huawei generic envelope
  (digest §5.1, "IAM/IMS style") `{"error_msg", "error_code", "request_id"}`, the same envelope
  as its `APIGW.0301` authentication refusals (see `huawei_iam`): 404 `APIGW.0101` "The API does
  not exist or has not been published in the environment" — the code and text the official Huawei
  SDKs report for a call to an API that is not published (the seeds list no gateway codes). A
  known path called with a method it does not serve keeps the status 405 ("Method Not Allowed:
  You are not allowed to use the method specified in the request", seed 001 §10.1) and the
  `Allow` header, with the same gateway code and envelope: for the gateway an API is a method and
  a path, and this one is not published.
Both keep `X-Request-Id`; the Huawei body's `request_id` is that same id.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from fleet.simulator.core import HUAWEI, KEYSTONE, OPENSTACK, json_response

_KEYSTONE_MESSAGES = {
    404: "The resource could not be found.",
    405: "The method is not allowed for the requested URL.",
}
_KEYSTONE_TITLES = {404: "Not Found", 405: "Method Not Allowed"}
_NOVA_MESSAGES = {
    404: "The resource could not be found.",
    405: "The method specified is not allowed for this resource.",
}
_NOVA_NAMES = {404: "itemNotFound", 405: "badMethod"}
GATEWAY_CODE = "APIGW.0101"
GATEWAY_MESSAGE = "The API does not exist or has not been published in the environment"


def dialect_of(path: str) -> str | None:
    """Whose refusal an unserved `path` gets (None: the `/_sim` control plane keeps aiohttp's)."""
    if path == "/_sim" or path.startswith("/_sim/"):
        return None
    if path == "/identity" or path.startswith("/identity/"):
        return KEYSTONE
    if path == "/compute" or path.startswith("/compute/"):
        return OPENSTACK
    return HUAWEI


def refusal(
    path: str, exc: web.HTTPException, request_id: Callable[[], str]
) -> tuple[str, web.Response] | None:
    """(dialect, answer) for a routing failure `exc` (404 or 405) on `path`, or None to keep it."""
    status = exc.status
    dialect = dialect_of(path)
    if status not in (404, 405) or dialect is None:
        return None
    body: dict[str, object]
    if dialect == KEYSTONE:
        body = {
            "error": {
                "code": status,
                "message": _KEYSTONE_MESSAGES[status],
                "title": _KEYSTONE_TITLES[status],
            }
        }
    elif dialect == OPENSTACK:
        body = {_NOVA_NAMES[status]: {"code": status, "message": _NOVA_MESSAGES[status]}}
    else:
        body = {
            "error_msg": GATEWAY_MESSAGE,
            "error_code": GATEWAY_CODE,
            "request_id": request_id(),
        }
    response = json_response(body, status=status)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return dialect, response
