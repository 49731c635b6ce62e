"""Which compute microversions an OpenStack endpoint serves, read from its version document.

As keystoneauth discovers a service (the `version` and `min_version` of a Nova version entry), the
driver reads the compute endpoint's version document once, on first use of the compute URL: first
the versioned root (the catalog URL cut after its `v2.1` segment, e.g. `.../compute/v2.1`, which
answers `{"version": {...}}`), then the unversioned root (`.../compute/`, which answers
`{"versions": [...]}`, the `v2.1` entry is read). From it:

- the microversion sent on every call: min(2.26, the advertised maximum). The driver needs 2.26
  (tags in server bodies, tag list filters); below it it reads what the cloud offers, and the
  server bodies simply carry no tags;
- the tag API (`/servers/{id}/tags`) and the tag list filters are used iff the maximum is 2.26 or
  more (Nova added both in 2.26);
- a create sends its tags in the body, with 2.52, iff the maximum is 2.52 or more (`tags` in
  `POST /servers` came with 2.52; below, the body's schema has no `tags` and the cloud answers
  400); below it the create writes them as server `metadata` (`fleet.drivers.nova.create`).

A version document without microversions (`version: ""`, the legacy v2 API) means none are
served: no microversion header is sent and there is no tag API. An endpoint that answers neither
document (404 or an unreadable body) keeps the flavour's static declaration and is sent 2.26 as
before discovery existed (logged as a warning). A failure to reach the cloud is not cached: the
next use of the compute URL tries again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from fleet.drivers.errors import NotFound, Permanent
from fleet.drivers.http import HttpResponse
from fleet.drivers.jsonutil import as_dict, as_list, opt_str

Version = tuple[int, int]
WANTED: Version = (2, 26)  # tags in bodies and tag filters; keeps the flavor `id` (changes at 2.47)
TAGS_FROM: Version = (2, 26)  # Nova's tag API and `tags`/`tags-any`/`not-tags*` filters
CREATE_TAGS_FROM: Version = (2, 52)  # `tags` in the body of `POST /servers`
_VERSION_SEGMENT = re.compile(r"v\d+(\.\d+)?")
_NUMBER = re.compile(r"(\d+)\.(\d+)")


def show(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


@dataclass(frozen=True)
class ComputeVersion:
    """What a compute version document says: the microversion range (None: no microversions)."""

    max_version: Version | None
    min_version: Version | None = None
    url: str = ""  # the document it was read from

    @property
    def sent(self) -> Version | None:
        """The microversion to send (None: send no microversion header)."""
        return None if self.max_version is None else min(WANTED, self.max_version)

    @property
    def microversion(self) -> str | None:
        return None if self.sent is None else show(self.sent)

    @property
    def tag_api(self) -> bool:
        return self.max_version is not None and self.max_version >= TAGS_FROM

    @property
    def create_tags(self) -> bool:
        """The cloud takes `tags` in a create's body (2.52); below, a 400."""
        return self.max_version is not None and self.max_version >= CREATE_TAGS_FROM

    def describe(self) -> str:
        return "no microversions" if self.max_version is None else show(self.max_version)


def version_roots(compute_url: str) -> list[str]:
    """The versioned root, then the unversioned root, of a compute URL (a URL without a version
    segment is its own root)."""
    parts = urlsplit(compute_url.rstrip("/"))
    segments = parts.path.split("/")
    at = max((i for i, s in enumerate(segments) if _VERSION_SEGMENT.fullmatch(s)), default=None)
    if at is None:
        return [compute_url.rstrip("/")]
    versioned = urlunsplit(parts._replace(path="/".join(segments[: at + 1]), query=""))
    unversioned = urlunsplit(parts._replace(path="/".join(segments[:at]) + "/", query=""))
    return [versioned, unversioned]


def _parse(text: str | None) -> Version | None:
    match = _NUMBER.fullmatch(text or "")
    return None if match is None else (int(match[1]), int(match[2]))


def parse_document(data: object, url: str = "") -> ComputeVersion | None:
    """The v2.1 entry of a version document (`{"version": ...}` or `{"versions": [...]}`), None
    when the body is not one."""
    body = as_dict(data)
    entry = as_dict(body.get("version"))
    if not entry:
        entries = [as_dict(e) for e in as_list(body.get("versions"))]
        chosen = [e for e in entries if opt_str(e.get("id")) == "v2.1"]
        entry = chosen[0] if chosen else {}
    if not entry or "version" not in entry:
        return None
    raw = opt_str(entry.get("version"))
    maximum = _parse(raw)
    if raw and maximum is None:
        return None  # a `version` that is not X.Y: not a document we can read
    return ComputeVersion(maximum, _parse(opt_str(entry.get("min_version"))), url)


async def discover(
    compute_url: str, get: Callable[[str], Awaitable[HttpResponse]]
) -> ComputeVersion | None:
    """The compute version document of `compute_url`, read with `get(root_url)`; None when no
    root answers one. Errors other than a refusal (404 and the like) propagate."""
    for root in version_roots(compute_url):
        try:
            response = await get(root)
        except (NotFound, Permanent):
            continue
        found = parse_document(response.data, root)
        if found is not None:
            sent, least = found.sent, found.min_version
            if sent is not None and least is not None and sent < least:
                raise Permanent(
                    f"the compute API at {root} serves microversions {show(least)} and up;"
                    f" fleet needs {show(WANTED)} or below"
                )
            return found
    return None
