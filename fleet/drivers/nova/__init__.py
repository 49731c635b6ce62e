"""OpenStack Nova v2.1 and EasyStack: `driver` (one call per server, completion read from the
server), `keystone` (tokens and the service catalogue), `clouds` (endpoints from `clouds.yaml`)."""

__all__ = ["clouds", "driver"]
