"""The `fleet` command line: the only place, with the service's start-up, where a user's words
become calls.

`entry` builds the parser and dispatches (`main`, the `fleet` console script and
`python -m fleet.cli`); `args` holds the argparse value types; `client`, `policies`, `remote` and
`text` are the side that talks to a running service over HTTP (no database access of their own);
`commands` runs fleet in this process (`serve`, `worker`, `db upgrade`, `tokens`); `policy_runner`
is `python -m fleet.cli.policy_runner`, the engine plus the policy scheduler with their own knobs.
"""

from fleet.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
