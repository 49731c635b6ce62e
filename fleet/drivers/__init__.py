"""The drivers: pure HTTP clients, one per cloud dialect, and everything fleet knows about clouds.

`base` is what every driver is (the `Driver` Protocol, capabilities, returned values), `errors`
the one error tree they raise, `actions` how each driver declares what an action means on its
dialect (calls, recipes, evidence, expected time), `registry` the map from provider to driver
class (and the kinds every dialect offers), `config` their settings. `huawei/` (ECS, BMS) and
`nova/` (OpenStack Nova, EasyStack) are the dialects. No database, no engine, no simulator.
"""

__all__ = ["actions", "base", "config", "errors", "huawei", "nova", "registry"]
