"""Nova `POST /servers` (upstream, and EasyStack seed §1.4): one server per call.

Where the cloud serves microversion 2.52 (its version document, `discovery`), 2.52 is sent with
a create and the tags go in the body (`tags`, "key=value" strings, as fleet writes 2D tags on
Nova; the seed recommends 2.67, which changes nothing fleet sends). Below 2.52 the body's schema
has no `tags` (the cloud answers 400), so the create is sent with the endpoint's microversion and
the tags, the operation's identity among them, go in `metadata` (key -> value, at most 255
characters each, seed §1.4), which every microversion takes and shows in server bodies: the
identity listing then narrows by name and reads the metadata (`made_by`). The body
also names `name`, `flavorRef`, `imageRef`, `networks` [{`uuid`}], `availability_zone`, and
`key_name` / `adminPass` when given. The answer is 202 `{"server": {"id", "links", "adminPass",
...}}`: only the id is read (the password is never kept).
Limits: `GET /limits` -> `absolute.maxTotalInstances` and `totalInstancesUsed`.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet.domain import Action, tag_to_1d
from fleet.drivers.base import CreateRequest, Quota, Submission
from fleet.drivers.errors import Transient, Unsupported
from fleet.drivers.http import HttpResponse
from fleet.drivers.jsonutil import as_dict, opt_str
from fleet.drivers.query import QueryValue

CREATE, LIMITS = "create", "limits"
CREATE_MICROVERSION = "2.52"
CREATE_HEADERS: Mapping[str, str] = {"X-OpenStack-Nova-API-Version": CREATE_MICROVERSION}
MAX_TAGS = 50  # Nova's limit of tags per server
MAX_METADATA = 255  # characters of a metadata key or value (seed 004 §1.4)


def create_body(request: CreateRequest, *, tags_in_body: bool = True) -> dict[str, object]:
    """The body of `POST /servers`: the tags as `tags` (2.52 and up) or as `metadata`."""
    server: dict[str, object] = {
        "name": request.name,
        "flavorRef": request.flavor,
        "imageRef": request.image,
        "networks": [{"uuid": request.network}],
    }
    if tags_in_body:
        server["tags"] = [tag_to_1d(k, v) for k, v in request.tags.items()]
    else:
        server["metadata"] = dict(request.tags)
    if request.availability_zone:
        server["availability_zone"] = request.availability_zone
    if request.key_name:
        server["key_name"] = request.key_name
    if request.admin_password:
        server["adminPass"] = request.admin_password
    return {"server": server}


def check_tags(tags: Mapping[str, str], *, tags_in_body: bool) -> None:
    """The tags a create can write: one of `MAX_TAGS` is the operation's identity; as metadata
    (`tags_in_body` False), keys of 1 to `MAX_METADATA` characters, values of at most as many."""
    if len(tags) > MAX_TAGS - 1:
        raise Unsupported(f"at most {MAX_TAGS - 1} tags", field="params.tags")
    problem = None if tags_in_body else metadata_problem(tags)
    if problem is not None:
        raise Unsupported(problem, field="params.tags")


def metadata_problem(tags: Mapping[str, str]) -> str | None:
    """Why `tags` cannot be server metadata (None: they can)."""
    for key, value in tags.items():
        if not key or len(key) > MAX_METADATA or len(value) > MAX_METADATA:
            return f"tag {key!r}: a metadata key of 1 to 255 and a value of at most 255 characters"
    return None


def name_query(name_prefix: str) -> list[tuple[str, QueryValue]]:
    """Nova's `name` filter (a regular expression) for names starting with `name_prefix` (whose
    only character special in one is `.`)."""
    return [("name", "^" + name_prefix.replace(".", "\\."))] if name_prefix else []


def made_by(body: object, tag: tuple[str, str], name_prefix: str) -> bool:
    """A server body whose metadata carries `tag` and whose name starts with `name_prefix`."""
    server = as_dict(body)
    name = server.get("name")
    metadata = as_dict(server.get("metadata"))
    return isinstance(name, str) and name.startswith(name_prefix) and metadata.get(tag[0]) == tag[1]


def created_id(data: object) -> str | None:
    return opt_str(as_dict(as_dict(data).get("server")).get("id"))


def created(response: HttpResponse, since: str | None) -> Submission:
    """The submission of an accepted create: its server's id, the cloud's acceptance time
    (`since`). Accepted without an id: the server may exist, so the send is ambiguous."""
    server_id = created_id(response.data)
    if server_id is None:
        raise Transient(
            "create accepted without a server id",
            ambiguous=True,
            http_status=response.status,
            request_id=response.request_id,
        )
    return Submission(
        Action.CREATE, (server_id,), CREATE, request_id=response.request_id, since=since
    )


def parse_limits(data: object) -> Quota | None:
    absolute = as_dict(as_dict(as_dict(data).get("limits")).get("absolute"))
    limit, used = absolute.get("maxTotalInstances"), absolute.get("totalInstancesUsed")
    if isinstance(limit, int) and isinstance(used, int) and limit >= 0:
        return Quota(used=used, limit=limit)
    return None
