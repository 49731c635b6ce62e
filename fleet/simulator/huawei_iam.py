"""Huawei IAM: password tokens (`POST /v3/auth/tokens`) and the auth check of every Huawei path."""

from __future__ import annotations

from aiohttp import web

from fleet.simulator.core import HUAWEI, SimReply, ctx_of, error_response


async def authenticate(request: web.Request, project_id: str, dialect: str = HUAWEI) -> None:
    """Accept a valid `X-Auth-Token` for `project_id` (or an AK/SK signature); else 401/400.

    A token for another project is `Ecs.0023` (400) as the digest documents.
    """
    ctx = ctx_of(request)
    value = request.headers.get("X-Auth-Token")
    if value is not None:
        token = ctx.valid_token(value, HUAWEI)
        if token is None:
            raise SimReply(error_response(dialect, 401, "Invalid token.", "Common.0013"))
        if token.project_id != project_id:
            raise SimReply(
                error_response(
                    dialect,
                    400,
                    "project_id in token mismatches with project_id in url.",
                    "Ecs.0023",
                )
            )
        return
    raise SimReply(error_response(dialect, 401, "Invalid token.", "Common.0013"))


def setup(app: web.Application) -> None:
    """Register the IAM routes."""
