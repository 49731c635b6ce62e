"""The `fleet` command line."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from fleet.cli.args import (
    amount,
    exclude_tag,
    key_value,
    port,
    positive_float,
    positive_int,
    waves,
    worker_name,
)
from fleet.cli.remote_parsers import cursor_arg, policies_parser, remote_args, schedules_parser
from fleet.drivers.registry import KINDS
from jobs.states import State

STATES = ", ".join(s.value for s in State)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="serve the loopback cloud simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=port, default=8700)
    sim.add_argument("--world", default=None, help="TOML world file")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument(
        "--speed", type=positive_float, default=None, help="simulated seconds per real second"
    )
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the database to the latest schema")
    _config_arg(up)
    worker = sub.add_parser(
        "worker",
        help="run the engine (planning, dispatch, polling) and the policy scheduler, no API",
    )
    _config_arg(worker)
    worker.add_argument(
        "--name",
        "--worker",
        dest="name",
        type=worker_name,
        default=None,
        help="worker name, stable across restarts (default: engine.worker, else host-pid)",
    )
    _service_parsers(sub)
    _client_parsers(sub)
    return parser


def _service_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands that run in this process: the service, and token administration."""
    serve = sub.add_parser("serve", help="run the REST API with the engine (and the simulator)")
    _config_arg(serve)
    serve.add_argument(
        "--bootstrap-token-file",
        default=None,
        help="keep a valid admin token in this file (also FLEET_BOOTSTRAP_TOKEN_FILE)",
    )
    serve.add_argument("--url-file", default=None, help="write the listening URL here")
    serve.add_argument(
        "--worker",
        type=worker_name,
        default=None,
        help="this process's worker name (default: engine.worker, else HOST:PORT of the API)",
    )
    serve.add_argument(
        "--role",
        choices=["all", "api", "engine"],
        default="all",
        help="all: the API and the engine (default); api: the API only, another process runs "
        "the engine; engine: the engine, with only /healthz, /readyz and /metrics over HTTP",
    )
    tokens = sub.add_parser("tokens", help="API tokens, straight in the database")
    tsub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tsub.add_parser("create", help="create a token and print it (once)")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
    _config_arg(create)
    for verb, text in (("list", "list tokens"), ("revoke", "revoke a token")):
        cmd = tsub.add_parser(verb, help=text)
        if verb == "revoke":
            cmd.add_argument("name")
        _config_arg(cmd)


def _run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="start an operation through the API")
    remote_args(run)
    run.add_argument("action", choices=KINDS)
    run.add_argument("--endpoint", action="append", help="endpoint name (repeatable)")
    run.add_argument("--id", action="append", help="server id (repeatable)")
    run.add_argument(
        "--tag", action="append", type=key_value, help="k=v the servers must carry (repeatable)"
    )
    run.add_argument(
        "--exclude-tag", default=None, type=exclude_tag, help="k=v to skip ('' disables exclusion)"
    )
    run.add_argument("--name", default=None, help="server name glob, e.g. 'web-*'")
    run.add_argument("--status", action="append", help="server status (repeatable)")
    run.add_argument("--flavor", default=None, help="target flavor of a resize")
    run.add_argument("--type", default=None, choices=["SOFT", "HARD", "soft", "hard"])
    run.add_argument("--live", action="store_true", help="EasyStack live resize")
    run.add_argument(
        "--set-tag", action="append", type=key_value, help="k=v to add/remove (tag_add, tag_remove)"
    )
    create = run.add_argument_group(
        "create",
        "with --count, --name is the name template (web-{n:03d}) and --tag the tags to set",
    )
    create.add_argument("--count", type=positive_int, default=None, help="servers per endpoint")
    create.add_argument("--image", default=None, help="image id")
    create.add_argument("--network", default=None, help="Huawei: subnet id; Nova: network id")
    create.add_argument("--vpc", default=None, help="Huawei: the subnet's VPC id")
    create.add_argument("--zone", default=None, help="availability zone")
    create.add_argument("--key-name", default=None, help="key pair name")
    create.add_argument(
        "--admin-password", default=None, help="secret reference: env:NAME or file:PATH"
    )
    run.add_argument("--max-in-flight", type=positive_int, default=None)
    run.add_argument("--max-errors", type=amount, default=None, help="N or P%%")
    run.add_argument("--waves", type=waves, default=None, help="e.g. 1,10%%,100%%")
    run.add_argument("--pause-after-wave", action="store_true")
    run.add_argument("--dry-run", action="store_true", help="plan only: targets, calls, ETA")
    run.add_argument("--wait", action="store_true", help="follow with a progress bar")
    run.add_argument("--reason", default="", help="why (kept with the operation)")
    run.add_argument("--idempotency-key", default=None)


_OPS_HELP = {
    "approve": "approve an operation pending approval (not with the token that created it)",
    "reject": "reject an operation pending approval: nothing is sent",
}


def _client_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands that talk to a running service over the REST API."""
    _run_parser(sub)
    ops = sub.add_parser("ops", help="list, show, follow and control operations")
    osub = ops.add_subparsers(dest="ops_command", required=True)
    listing = osub.add_parser("list", help="operations, newest first")
    remote_args(listing)
    listing.add_argument("--state", default=None)
    listing.add_argument("--limit", type=positive_int, default=20)
    cursor_arg(listing)
    verbs = ("show", "watch", "subjobs", "cancel", "pause", "resume", "retry-failed")
    for verb in (*verbs, "approve", "reject"):
        cmd = osub.add_parser(verb, help=_OPS_HELP.get(verb, f"{verb} an operation"))
        remote_args(cmd)
        cmd.add_argument("operation_id")
        if verb in ("approve", "reject"):
            cmd.add_argument("--note", default=None, help="recorded with the decision")
        if verb == "subjobs":
            cmd.add_argument("--state", default=None, help=f"only sub-jobs in this state: {STATES}")
            cmd.add_argument("--limit", type=positive_int, default=100)
            cursor_arg(cmd)
        if verb == "retry-failed":
            cmd.add_argument(
                "--include-unknown",
                action="store_true",
                help="also requeue the unknown sub-jobs (read back from the cloud first)",
            )
    endpoints = sub.add_parser("endpoints", help="endpoints and their rate keys")
    remote_args(endpoints)
    flavors = sub.add_parser(
        "flavors", help="an endpoint's flavors (a resize may name one by id or by name)"
    )
    remote_args(flavors)
    flavors.add_argument("endpoint", nargs="?", default=None, help="the endpoint's name")
    flavors.add_argument(
        "--endpoint", dest="endpoint_option", default=None, metavar="ENDPOINT", help="the same"
    )
    servers = sub.add_parser("servers", help="servers through the drivers")
    remote_args(servers)
    servers.add_argument("--endpoint", action="append")
    servers.add_argument("--tag", action="append", type=key_value, help="k=v (repeatable)")
    servers.add_argument("--status", action="append")
    servers.add_argument("--name", default=None)
    servers.add_argument("--limit", type=positive_int, default=100)
    cursor_arg(servers)
    policies_parser(sub)
    _webhooks_parser(sub)
    _report_parsers(sub)
    schedules_parser(sub)


def _webhooks_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = sub.add_parser("webhooks", help="webhook subscriptions and their delivery log (admin)")
    wsub = hooks.add_subparsers(dest="webhooks_command", required=True)
    remote_args(wsub.add_parser("list", help="every subscription"))
    for verb, text in (
        ("create", "subscribe a URL to events"),
        ("show", "one subscription"),
        ("update", "change a subscription"),
        ("delete", "delete a subscription and its delivery log"),
        ("deliveries", "the delivery log: status, attempts, response code, latency"),
        ("test", "send a signed test event now (exit 1 if the receiver did not take it)"),
    ):
        cmd = wsub.add_parser(verb, help=text)
        remote_args(cmd)
        if verb != "create":
            cmd.add_argument("webhook_id")
        if verb in ("create", "update"):
            _webhook_args(cmd, verb == "create")
        elif verb == "deliveries":
            cmd.add_argument("--limit", type=positive_int, default=50)
            cmd.add_argument("--status", choices=("pending", "delivered", "failed"))
            cursor_arg(cmd)


def _webhook_args(cmd: argparse.ArgumentParser, create: bool) -> None:
    cmd.add_argument(
        "--to", dest="to_url", required=create, metavar="URL", help="where to POST (http(s)://)"
    )
    cmd.add_argument(
        "--events",
        action="append",
        required=create,
        help="event types, comma-separated or repeated; * for all",
    )
    cmd.add_argument(
        "--secret",
        required=create,
        metavar="REF",
        help="where the whsec_ secret is: env:NAME or file:PATH (never the secret itself)",
    )
    cmd.add_argument("--description", default=None)
    for flag, what in (("endpoint", "endpoint"), ("policy", "policy"), ("state", "outcome/state")):
        cmd.add_argument(
            f"--filter-{flag}",
            action="append",
            default=None,
            metavar="NAME",
            help=f"only this {what} (repeatable)",
        )
    if not create:
        cmd.add_argument("--no-filter", action="store_true", help="remove the filter")
    state = cmd.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)


def _report_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="reports: what fleet's stops saved")
    rsub = report.add_subparsers(dest="report_command", required=True)
    savings = rsub.add_parser(
        "savings", help="hours servers stayed stopped because fleet stopped them, priced"
    )
    remote_args(savings)
    savings.add_argument(
        "--from", dest="start", default=None, help="ISO time (default: 7 days ago)"
    )
    savings.add_argument("--to", dest="end", default=None, help="ISO time, excluded (default: now)")
    savings.add_argument(
        "--group-by", default="policy", choices=["policy", "endpoint", "flavor", "day"]
    )
    savings.add_argument("--tz", default="UTC", help="IANA time zone of the days (--group-by day)")
    savings.add_argument("--csv", action="store_true", help="CSV: one row per group, then total")
    drift = sub.add_parser(
        "drift", help="servers that did not reach what was asked, or left it soon after"
    )
    remote_args(drift)
    drift.add_argument("--since", default=None, help="detected at or after (ISO time)")
    drift.add_argument("--policy", default=None)
    drift.add_argument("--endpoint", default=None)
    drift.add_argument("--limit", type=positive_int, default=50)
    cursor_arg(drift)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        action="append",
        default=None,
        help="TOML file merged over config/default.toml (repeatable)",
    )


def _one_endpoint(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`fleet flavors ENDPOINT` or `fleet flavors --endpoint ENDPOINT`: exactly one endpoint."""
    named = {n for n in (args.endpoint, args.endpoint_option) if n is not None}
    if len(named) != 1:
        what = "two different endpoints" if named else "no endpoint"
        parser.error(f"flavors: {what}: give one, ENDPOINT or --endpoint ENDPOINT")
    args.endpoint = args.endpoint_option = named.pop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "flavors":
        _one_endpoint(parser, args)
    if args.command == "simulate":
        from fleet.simulator.server import serve

        return serve(
            host=args.host, port=args.port, world=args.world, seed=args.seed, speed=args.speed
        )
    remote_commands = ("run", "ops", "endpoints", "flavors", "servers", "policies", "report")
    if args.command in (*remote_commands, "webhooks", "drift", "schedules"):
        from fleet.cli.remote import remote

        return asyncio.run(remote(args))
    from fleet.cli.commands import run_db_upgrade, run_serve, run_tokens, run_worker

    if args.command == "db":
        return run_db_upgrade(args.config or [])
    if args.command == "worker":
        return run_worker(args.config or [], args.name)
    if args.command == "serve":
        return run_serve(
            args.config or [], args.bootstrap_token_file, args.url_file, args.worker, args.role
        )
    if args.command == "tokens":
        name = getattr(args, "name", None)
        return run_tokens(args.config or [], args.tokens_command, name, getattr(args, "role", None))
    return 2
