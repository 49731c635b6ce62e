"""Webhooks: subscriptions, a transactional outbox and one signed delivery stream.

Any code that changes state calls `publish(conn, type, subject, data, now=..., scope=...)` on the
connection of its own write transaction (see `fleet.webhooks.outbox`); the engine's operation and
sub-job history reaches it through `on_engine_events`, registered with `Database.listen`. The
relay (`fleet.webhooks.relay`) sends what the outbox holds, signed the Standard Webhooks way.
"""

from fleet.webhooks.engine_events import on_engine_events
from fleet.webhooks.events import EventType, Scope
from fleet.webhooks.outbox import publish

__all__ = ["EventType", "Scope", "on_engine_events", "publish"]
