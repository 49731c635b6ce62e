"""One API command from the command line: pick its handler, open the session, map the errors.

The handlers live with what they talk about (`fleet.cli.client`: run, ops, endpoints, servers;
`fleet.cli.policies`: policies; `fleet.cli.schedules`: schedules); this module sits above both, so neither imports the other's
caller. Exit codes are those listed in `fleet.cli.client`.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Awaitable, Callable
from typing import TextIO

import aiohttp

from fleet.cli.client import (
    DEFAULT_URL,
    ApiError,
    Client,
    cmd_endpoints,
    cmd_flavors,
    cmd_ops,
    cmd_run,
    cmd_servers,
    token_from_env,
    url_problem,
)
from fleet.cli.policies import cmd_policies
from fleet.cli.reports import cmd_drift, cmd_report
from fleet.cli.schedules import cmd_schedules
from fleet.cli.webhooks import cmd_webhooks

Command = Callable[[Namespace, Client, TextIO, TextIO], Awaitable[int]]
COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "ops": cmd_ops,
    "endpoints": cmd_endpoints,
    "servers": cmd_servers,
    "flavors": cmd_flavors,
    "policies": cmd_policies,
    "webhooks": cmd_webhooks,
    "report": cmd_report,
    "drift": cmd_drift,
    "schedules": cmd_schedules,
}


async def remote(args: Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one API command; problems and connection errors become messages and exit codes."""
    url = args.url or os.environ.get("FLEET_URL") or DEFAULT_URL
    problem = url_problem(url)
    if problem:
        where = "--url" if args.url else "FLEET_URL"
        err.write(f"fleet {args.command}: error: {where} {url!r}: {problem}\n")
        return 2
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        client = Client(url, token_from_env(), session)
        try:
            return await COMMANDS[args.command](args, client, out, err)
        except ApiError as exc:
            err.write(f"fleet: {exc.status}: {exc.problem.get('detail') or exc}\n")
            return 2
        except aiohttp.ClientConnectionError as exc:
            err.write(f"fleet: cannot reach the service at {url}: {exc}\n")
            return 3
