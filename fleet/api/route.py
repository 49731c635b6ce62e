"""What one row of the routes table says: enough to register, authorise and document a route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from fleet.tokens import Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Reply:
    """A documented answer: status, meaning, and its body (a model, or a media type's text)."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    media: str = "application/json"
    headers: tuple[str, ...] = ()  # response headers worth documenting (e.g. Location)


@dataclass(frozen=True)
class HeaderParam:
    name: str
    description: str
    max_length: int = 255


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    role: Role | None  # None: open to anyone (only /healthz)
    operation_id: str
    summary: str
    tag: str
    replies: tuple[Reply, ...]
    body: type[BaseModel] | None = None
    body_optional: bool = False  # no body at all means the model's defaults
    query: type[BaseModel] | None = None
    headers: tuple[HeaderParam, ...] = ()
    conflicts: bool = False  # may answer 409 (the operation's state forbids it)

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]
