"""A create's request and the names of the servers it makes (decision D40).

- `parse_create`: the create fields of an operation's `params` -> `CreateParams`, with errors
  naming the field.
- Names: server `n` (from 1) of an operation is `planned_name(template, n)` (`web-{n:03d}` ->
  `web-007`). A dialect that creates one server per call names it so. A dialect whose batch call
  names its servers from one base name (`-0001`, `-0002`, ... appended by the cloud) gets the
  base `{stem}-{first}`, where the stem is the template's literal prefix and the operation's
  short id (`web-3f2a9c1b`) and `first` the number of the batch's first server: the cloud's
  suffix `p` then names server `first + p - 1`, whatever the batch, so each planned server is
  found again by its name alone (`slot_of`) after a crash or a lost answer.
- Every created server carries the tag `fleet-op=<operation id>` (`OP_TAG`): the listing that
  finds an operation's servers asks for it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from fleet.domain import CreateParams
from jobs.errors import FieldError

OP_TAG = "fleet-op"
NAME_CHARS = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")
_SLOT = re.compile(r"^(\d+)(?:-(\d{4}))?$")
SECRET_SCHEMES = ("env:", "file:")
MAX_PREFIX = 30  # keeps `{prefix}-{op8}-{first}` within the clouds' base-name limits (58)


def _text(raw: Mapping[str, object], key: str, *, required: bool) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise FieldError(f"params.{key}", "must be a non-empty string")
    return value


def planned_name(template: str, n: int) -> str:
    return template.format(n=n)


def _template(raw: Mapping[str, object], count: int) -> str:
    template = _text(raw, "name", required=True) or ""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        first, second = planned_name(template, 1), planned_name(template, 2)
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise FieldError(
            "params.name", f"a template with {{n}} only (like web-{{n:03d}}): {exc}"
        ) from None
    if fields - {"n"}:
        raise FieldError("params.name", "the only template field is {n}")
    if count > 1 and first == second:
        raise FieldError("params.name", "several servers need {n} in the name (web-{n:03d})")
    for n in (1, count):
        if not NAME_CHARS.match(planned_name(template, n)):
            raise FieldError("params.name", "names of 1 to 63 letters, digits, '-', '_' or '.'")
    return template


def parse_create(raw: Mapping[str, object]) -> CreateParams:
    """The create fields of `params`; raises FieldError naming the field."""
    count = raw.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FieldError("params.count", "must be an integer of at least 1")
    password = _text(raw, "admin_password", required=False)
    if password is not None and not password.startswith(SECRET_SCHEMES):
        raise FieldError(
            "params.admin_password",
            "a secret reference (env:NAME or file:PATH), never the password itself",
        )
    return CreateParams(
        count=count,
        name=_template(raw, count),
        image=_text(raw, "image", required=True) or "",
        network=_text(raw, "network", required=True) or "",
        vpc=_text(raw, "vpc", required=False),
        availability_zone=_text(raw, "availability_zone", required=False),
        key_name=_text(raw, "key_name", required=False),
        admin_password=password,
    )


def literal_prefix(template: str) -> str:
    """What every name of `template` starts with (`web-{n:03d}` -> `web-`)."""
    return template.split("{", 1)[0]


def stem(template: str, operation_id: str) -> str:
    """`web-{n:03d}` of operation `3f2a9c1b-...` -> `web-3f2a9c1b`."""
    prefix = template.split("{", 1)[0].rstrip("-_.")[:MAX_PREFIX] or "fleet"
    return f"{prefix}-{operation_id.replace('-', '')[:8]}"


def batch_base(template: str, operation_id: str, first: int) -> str:
    return f"{stem(template, operation_id)}-{first}"


def slot_of(name: str, template: str, operation_id: str) -> int | None:
    """The planned server a batch-created name stands for (None: not one of this operation's)."""
    head = stem(template, operation_id) + "-"
    if not name.startswith(head):
        return None
    found = _SLOT.match(name[len(head) :])
    if found is None:
        return None
    first, position = int(found.group(1)), found.group(2)
    return first if position is None else first + int(position) - 1
