"""(being written)"""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this dialect's routes."""
