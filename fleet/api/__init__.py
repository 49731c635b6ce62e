"""fleet's REST API v1: aiohttp app factory, routes table, schemas, problems, auth, SSE, metrics."""
