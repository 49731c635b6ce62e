"""Nova action bodies, one builder per action, with EasyStack's quirks as flags.

EasyStack is an OpenStack endpoint with a few differences (api-digest 3.4, 8): `{"os-start": true}`
bodies, an online `live_resize`, delete into a recycle bin. They are data (`NovaQuirks`), chosen by
the endpoint's `flavour`, not subclasses or scattered `if`s.

Whether the cloud serves the tag API and the tag list filters is not the flavour's to say: the
driver reads the endpoint's version document (`discovery`) and `discovered` sets both flags (Nova
added them in microversion 2.26). Until then the flavour's static declaration holds: plain
OpenStack assumes them (upstream Nova has served 2.26 since 2016), EasyStack does not (its
documentation is silent on them), with `no_tags` saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fleet.domain import ActionParams, PowerType, Selector, ServerStatus, tag_to_1d
from fleet.drivers.config import ConfigError, Flavour
from fleet.drivers.errors import Permanent, Unsupported
from fleet.drivers.query import QueryValue


@dataclass(frozen=True)
class NovaQuirks:
    live_resize: bool = False  # `{"live_resize": {...}}` for ACTIVE servers
    recycle_bin: bool = False  # DELETE leaves the server in status DELETED
    tag_api: bool = True  # /servers/{id}/tags mutations
    tag_filter: bool = True  # `tags` / `tags-any` / `not-tags-any` list filters
    start_body_true: bool = False  # `{"os-start": true}` instead of `{"os-start": null}`
    no_tags: str = ""  # why there is no tag API (when `tag_api` is false)


NOT_YET_DISCOVERED = (
    "the tag API is offered when the cloud serves it (microversion 2.26+), which fleet reads from "
    "the endpoint's version document at start-up; it has not been read yet"
)
OPENSTACK_QUIRKS = NovaQuirks()
EASYSTACK_QUIRKS = NovaQuirks(
    live_resize=True,
    recycle_bin=True,
    tag_api=False,
    tag_filter=False,
    start_body_true=True,
    no_tags=NOT_YET_DISCOVERED,
)


def discovered(quirks: NovaQuirks, tag_api: bool, max_version: str) -> NovaQuirks:
    """`quirks` once the endpoint's version document is read: the tag API and the tag filters
    iff the cloud serves microversion 2.26 (`max_version` is what it advertises)."""
    why = (
        ""
        if tag_api
        else f"the cloud does not serve the tag API (its maximum microversion is {max_version}; "
        "tags need 2.26): tags are set at creation only"
    )
    return replace(quirks, tag_api=tag_api, tag_filter=tag_api, no_tags=why)


def quirks_for(flavour: str) -> NovaQuirks:
    if flavour == Flavour.EASYSTACK:
        return EASYSTACK_QUIRKS
    if flavour == Flavour.OPENSTACK:
        return OPENSTACK_QUIRKS
    raise ConfigError(f"unknown openstack flavour {flavour!r}")


def start_body(quirks: NovaQuirks) -> dict[str, object]:
    return {"os-start": True if quirks.start_body_true else None}


def stop_body(quirks: NovaQuirks, params: ActionParams) -> dict[str, object]:
    if params.type is PowerType.HARD:
        raise Unsupported(
            "Nova's os-stop has no HARD type (only a normal stop)", field="params.type"
        )
    return {"os-stop": True if quirks.start_body_true else None}


def reboot_body(params: ActionParams) -> dict[str, object]:
    return {"reboot": {"type": params.type.value}}


def resize_body(quirks: NovaQuirks, params: ActionParams) -> dict[str, object]:
    if not params.flavor:
        raise Permanent("resize needs a target flavor")
    if params.dry_run:
        raise Unsupported("Nova resize has no dry run", field="params.dry_run")
    if params.live:
        if not quirks.live_resize:
            raise Unsupported(
                "live resize is an EasyStack extension; this endpoint lacks it", field="params.live"
            )
        return {"live_resize": {"flavorRef": params.flavor}}
    return {"resize": {"flavorRef": params.flavor}}


def confirm_resize_body() -> dict[str, object]:
    return {"confirmResize": None}


def revert_resize_body() -> dict[str, object]:
    return {"revertResize": None}


def tags_1d(tags: Mapping[str, str]) -> list[str]:
    return [tag_to_1d(k, v) for k, v in tags.items()]


_STATUS_FILTER = {
    ServerStatus.RUNNING: "ACTIVE",
    ServerStatus.STOPPED: "SHUTOFF",
    ServerStatus.VERIFY_RESIZE: "VERIFY_RESIZE",
    ServerStatus.ERROR: "ERROR",
}


def list_query(selector: Selector, quirks: NovaQuirks) -> list[tuple[str, QueryValue]]:
    """Server-side narrowing where it is exact; `Selector.matches` stays the authority."""
    query: list[tuple[str, QueryValue]] = []
    if len(selector.statuses) == 1:
        (status,) = selector.statuses
        if status in _STATUS_FILTER:
            query.append(("status", _STATUS_FILTER[status]))
    if not quirks.tag_filter:
        return query
    if selector.tags_all:
        query.append(("tags", ",".join(tags_1d(selector.tags_all))))
    if len(selector.tags_any) == 1:
        ((key, values),) = selector.tags_any.items()
        if values:
            query.append(("tags-any", ",".join(tag_to_1d(key, v) for v in values)))
    excluded = _excluded(selector.tags_none)
    if excluded:
        query.append(("not-tags-any", ",".join(excluded)))
    return query


def _excluded(tags_none: Mapping[str, Sequence[str]]) -> list[str]:
    """`not-tags-any` strings, only when every entry names values (a bare key cannot be said)."""
    if not tags_none or any(not values for values in tags_none.values()):
        return []
    return [tag_to_1d(k, v) for k, values in tags_none.items() for v in values]
