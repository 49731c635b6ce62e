"""Request bodies of the Huawei APIs, one builder per action (pure functions, unit-tested).

One builder per action, never a shared "action name" parameter: a plug-in once sent stop for
reboot because two actions shared a code path. Shapes are verbatim from api-digest 3.1-3.3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleet.domain import Action, ActionParams, Selector
from fleet.drivers.errors import Permanent, Unsupported


def _servers(ids: Sequence[str]) -> list[dict[str, str]]:
    return [{"id": i} for i in ids]


def v1_start_body(ids: Sequence[str]) -> dict[str, object]:
    return {"os-start": {"servers": _servers(ids)}}


def v1_stop_body(ids: Sequence[str], params: ActionParams) -> dict[str, object]:
    return {"os-stop": {"type": params.type.value, "servers": _servers(ids)}}


def v1_reboot_body(ids: Sequence[str], params: ActionParams) -> dict[str, object]:
    return {"reboot": {"type": params.type.value, "servers": _servers(ids)}}


def v1_power_body(action: Action, ids: Sequence[str], params: ActionParams) -> dict[str, object]:
    """Batch start/stop/reboot (ECS `cloudservers/action`, BMS `baremetalservers/action`)."""
    if action is Action.START:
        return v1_start_body(ids)
    if action is Action.STOP:
        return v1_stop_body(ids, params)
    if action is Action.REBOOT:
        return v1_reboot_body(ids, params)
    raise Unsupported(f"{action.value} is not a batch power action")


def require_flavor(params: ActionParams) -> str:
    if not params.flavor:
        raise Permanent("resize needs a target flavor")
    return params.flavor


def v1_resize_body(params: ActionParams) -> dict[str, object]:
    body: dict[str, object] = {"resize": {"flavorRef": require_flavor(params)}}
    if params.dry_run:
        body["dry_run"] = True
    return body


def v1_delete_body(ids: Sequence[str], params: ActionParams) -> dict[str, object]:
    body: dict[str, object] = {"servers": _servers(ids)}
    if params.delete_publicip is not None:
        body["delete_publicip"] = params.delete_publicip
    if params.delete_volume is not None:
        body["delete_volume"] = params.delete_volume
    return body


def require_tags(params: ActionParams) -> Mapping[str, str]:
    if not params.tags:
        raise Permanent("a tag action needs at least one tag")
    return params.tags


def v1_tag_add_body(params: ActionParams) -> dict[str, object]:
    tags = require_tags(params)
    return {"action": "create", "tags": [{"key": k, "value": v} for k, v in tags.items()]}


def v1_tag_remove_body(params: ActionParams) -> dict[str, object]:
    """`value` is optional on delete: without it the key goes whatever its value."""
    tags = require_tags(params)
    items = [{"key": k, "value": v} if v else {"key": k} for k, v in tags.items()]
    return {"action": "delete", "tags": items}


def query_by_tag_body(selector: Selector, offset: int, limit: int) -> dict[str, object] | None:
    """`resource_instances/action` filter body; None when the tag criteria cannot all hold.

    AND across `tags` entries, OR across one entry's `values` (empty: any value), `not_tags` the
    same shape (A-14: sent as objects). `limit`/`offset` are strings, as documented.
    """
    tags: list[dict[str, object]] = []
    for key in sorted(set(selector.tags_all) | set(selector.tags_any)):
        if key in selector.tags_all:
            value = selector.tags_all[key]
            wanted = selector.tags_any.get(key)
            if wanted and value not in wanted:
                return None
            tags.append({"key": key, "values": [value]})
        else:
            tags.append({"key": key, "values": list(selector.tags_any[key])})
    body: dict[str, object] = {"action": "filter", "limit": str(limit), "offset": str(offset)}
    if tags:
        body["tags"] = tags
    if selector.tags_none:
        body["not_tags"] = [
            {"key": k, "values": list(v)} for k, v in sorted(selector.tags_none.items())
        ]
    return body


def native_start_body() -> dict[str, object]:
    return {"os-start": {}}


def native_stop_body(params: ActionParams) -> dict[str, object]:
    return {"os-stop": {"type": params.type.value}}


def native_reboot_body(params: ActionParams) -> dict[str, object]:
    return {"reboot": {"type": params.type.value}}


def native_confirm_resize_body() -> dict[str, object]:
    return {"confirmResize": None}


def native_revert_resize_body() -> dict[str, object]:
    return {"revertResize": None}
