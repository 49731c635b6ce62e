"""An operation's JSON (`params`, `selector`) <-> domain values, with errors that name the field.

The engine stores `params` and `selector` as opaque JSON; this module is the one place that gives
them meaning, for the API (validation at the edge) and for the planner and executor (after a
restart they read the same JSON back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fleet.domain import (
    EXPIRY_TAG,
    ActionParams,
    CreateParams,
    PowerType,
    Selector,
    ServerStatus,
    tag_day,
)
from fleet.drivers.registry import KINDS, NEEDS
from fleet.engine.tag_limits import filter_tag_problem
from fleet.engine.templates import parse_create
from jobs.errors import FieldError

DEFAULT_EXCLUDE_TAG = ("fleet-exclude", "true")


class SpecError(FieldError):
    """A bad operation field; `field` is its dotted path (e.g. `params.type`)."""


@dataclass(frozen=True)
class Targets:
    """What `selector` JSON says: the endpoints to look at and the servers to pick there."""

    endpoints: tuple[str, ...]  # empty: every configured endpoint
    selector: Selector
    exclude_tag: tuple[str, str] | None


def _str_list(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(field, "must be a list of non-empty strings")
    return list(value)


def _str_map(value: object, field: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise SpecError(field, "must be an object of strings")
    return dict(value)


def _multi_map(value: object, field: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise SpecError(field, "must be an object of string lists")
    return {str(k): tuple(_str_list(v, f"{field}.{k}")) if v else () for k, v in value.items()}


def parse_tag(text: str, field: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key:
        raise SpecError(field, f"{text!r} is not key=value")
    return key, value if sep else ""


_SELECTOR_KEYS = {
    "endpoints",
    "ids",
    "tags_all",
    "tags_any",
    "tags_none",
    "name",
    "statuses",
    "exclude_tag",
}


def parse_targets(raw: Mapping[str, object]) -> Targets:
    """`selector` JSON -> Targets; raises SpecError naming the field."""
    unknown = sorted(set(raw) - _SELECTOR_KEYS)
    if unknown:
        raise SpecError(f"selector.{unknown[0]}", "unknown field")
    statuses: list[ServerStatus] = []
    for i, s in enumerate(_str_list(raw.get("statuses", []), "selector.statuses")):
        try:
            statuses.append(ServerStatus(s))
        except ValueError:
            raise SpecError(f"selector.statuses[{i}]", f"unknown status {s!r}") from None
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise SpecError("selector.name", "must be a non-empty glob pattern")
    exclude: tuple[str, str] | None = DEFAULT_EXCLUDE_TAG
    if "exclude_tag" in raw:
        value = raw["exclude_tag"]
        if value is None:
            exclude = None
        elif isinstance(value, str):
            exclude = parse_tag(value, "selector.exclude_tag")
        else:
            raise SpecError("selector.exclude_tag", "must be key=value or null")
    selector = Selector(
        ids=frozenset(_str_list(raw.get("ids", []), "selector.ids")),
        tags_all=_str_map(raw.get("tags_all", {}), "selector.tags_all"),
        tags_any=_multi_map(raw.get("tags_any", {}), "selector.tags_any"),
        tags_none=_multi_map(raw.get("tags_none", {}), "selector.tags_none"),
        name_pattern=name,
        statuses=frozenset(statuses),
    )
    too_long = filter_tag_problem(selector, exclude)
    if too_long:
        raise SpecError(*too_long)
    return Targets(
        endpoints=tuple(_str_list(raw.get("endpoints", []), "selector.endpoints")),
        selector=selector,
        exclude_tag=exclude,
    )


_NEEDED = {"flavor": "the target flavor", "tags": "at least one tag"}
_CREATE_KEYS = {
    "count",
    "name",
    "image",
    "network",
    "vpc",
    "availability_zone",
    "key_name",
    "admin_password",
}
_PARAM_KEYS = {"type", "flavor", "live", "tags", "delete_publicip", "delete_volume"}


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # not an ISO week date, which `tag_day` also reads


def _iso_day(text: str) -> bool:
    """`YYYY-MM-DD`, a real day."""
    return bool(_DAY.fullmatch(text)) and tag_day(text) is not None


def parse_params(kind: str, raw: Mapping[str, object]) -> ActionParams:
    """`params` JSON -> ActionParams for `kind`; raises SpecError naming the field."""
    if kind not in KINDS:
        raise SpecError("action", f"unknown action {kind!r}; one of {', '.join(KINDS)}")
    creates = "count" in NEEDS.get(kind, ())  # a kind that makes servers takes their request
    unknown = sorted(set(raw) - _PARAM_KEYS - (_CREATE_KEYS if creates else set()))
    if unknown:
        raise SpecError(f"params.{unknown[0]}", "unknown field")
    try:
        power = PowerType(str(raw.get("type", "SOFT")).upper())
    except ValueError:
        raise SpecError("params.type", "must be SOFT or HARD") from None
    flavor = raw.get("flavor")
    tags = _str_map(raw.get("tags", {}), "params.tags")
    sets_tags = kind == "tag_add" or creates  # a tag_remove may name any value, "" included
    if sets_tags and EXPIRY_TAG in tags and not _iso_day(tags[EXPIRY_TAG]):
        raise SpecError(
            f"params.tags.{EXPIRY_TAG}",
            f"{tags[EXPIRY_TAG]!r} is not a day YYYY-MM-DD (the clean-up policies read it)",
        )
    given = {"flavor": isinstance(flavor, str) and bool(flavor), "tags": bool(tags)}
    for name in NEEDS.get(kind, ()):  # what the dialects declare the action needs
        if not given.get(name, name in raw):
            raise SpecError(f"params.{name}", f"{kind} needs {_NEEDED.get(name, 'it')}")
    flags: dict[str, bool | None] = {}
    for name in ("live", "delete_publicip", "delete_volume"):
        value = raw.get(name)
        if value is not None and not isinstance(value, bool):
            raise SpecError(f"params.{name}", "must be true or false")
        flags[name] = value
    create: CreateParams | None = None
    if creates:
        try:
            create = parse_create(raw)
        except FieldError as exc:
            raise SpecError(exc.field, exc.message) from None
    return ActionParams(
        type=power,
        flavor=flavor if isinstance(flavor, str) else None,
        live=bool(flags["live"]),
        tags=tags,
        delete_publicip=flags["delete_publicip"],
        delete_volume=flags["delete_volume"],
        create=create,
    )


def params_json(params: ActionParams) -> dict[str, object]:
    out: dict[str, object] = {"type": params.type.value}
    if params.flavor is not None:
        out["flavor"] = params.flavor
    if params.live:
        out["live"] = True
    if params.tags:
        out["tags"] = dict(params.tags)
    for name in ("delete_publicip", "delete_volume"):
        value = getattr(params, name)
        if value is not None:
            out[name] = value
    if params.create is not None:
        out |= {k: v for k, v in vars(params.create).items() if v is not None}
    return out
