"""fleet, the product: bulk operations on cloud servers, run by the `jobs` engine.

The tree, each folder by role, arrows pointing down (import-linter keeps them so): `domain`
(providers, actions, selectors, server values) <- `drivers` (pure HTTP clients, one package per
dialect, each declaring what its actions mean) <- `engine` (the adapter from the cloud to the
engine, and the one door every request to act goes through) <- `policies` (scheduled policies)
<- `service` (the composition root: `open_fleet` wires settings, drivers, store, engine and
policies) <- `api` (the REST API) <- `cli` (the `fleet` command). Beside them: `settings` (the
TOML files and `FLEET_*` variables), `tokens` (API tokens and their table), `logging`, and
`simulator`, the loopback cloud that imports none of the above.

The names below are the packages and modules meant for use from outside; import from them.
"""

__all__ = [
    "api",
    "cli",
    "domain",
    "drivers",
    "engine",
    "policies",
    "service",
    "settings",
    "simulator",
    "tokens",
]
