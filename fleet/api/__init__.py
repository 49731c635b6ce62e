"""fleet's REST API v1: the handlers, and nothing below them but calls to the service.

`routes` is the one table of paths, methods, roles and schemas; `schemas` (and `schemas_policies`)
the contract; `app` builds the aiohttp application (`create_app`) with problem+json errors
(`errors`), bearer-token auth (`context`) and logs; `server` runs it with the whole service
inside (`fleet serve`). One module per resource holds its handlers: `operations`, `events` (SSE),
`inventory`, `policies`, `system` (health, readiness, metrics, tokens). No SQL is written here:
the handlers reach the database through stores (`jobs.store`, `fleet.tokens`, the policy store).
"""

__all__ = ["app", "routes", "schemas", "schemas_policies", "server"]
