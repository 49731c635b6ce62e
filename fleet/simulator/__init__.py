"""The loopback cloud simulator: Huawei ECS, BMS and IAM, OpenStack Nova and Keystone, and
EasyStack, written from the API digest as an independent oracle (it imports only the standard
library and aiohttp, never fleet's drivers or domain code, so it cannot share their bugs).

`server` runs it (in-process, or `fleet simulate`), `app` is its aiohttp application, `world`
the simulated servers on a simulated clock, `worldgen` builds a world from a seed or a file.
"""

__all__ = ["app", "server", "world", "worldgen"]
