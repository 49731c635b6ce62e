"""`python -m fleet.cli.policy_runner`: the engine plus the policy scheduler in one process.

`fleet serve` and `fleet worker` run the scheduler too, from the `[policies]` settings; this runner
takes the policy files, the calendar directory and the scheduler's intervals as options instead::

    python -m fleet.cli.policy_runner --config config/prod.toml --policies config/policies.toml

Only the leader replica fires; the others wait as standbys. It runs until SIGTERM or SIGINT.
Exit status 2: a bad option, or a configuration or policy error (printed).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta

import structlog

from fleet.cli.args import positive_float
from fleet.logging import configure_logging
from fleet.policies.files import PolicySet, load_policy_files
from fleet.policies.model import PolicyError
from fleet.policies.scheduler import run_policies
from fleet.service import open_fleet
from fleet.settings import PoliciesSpec, Settings, SettingsError, load_with_defaults


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fleet.cli.policy_runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="TOML file merged over config/default.toml (repeatable)",
    )
    parser.add_argument("--policies", action="append", default=[], help="policy file (repeatable)")
    parser.add_argument(
        "--calendars",
        default=None,
        help="calendar directory (default: calendars/ next to the first policy file)",
    )
    parser.add_argument("--name", default=None, help="worker name (logged, kept on fires)")
    seconds = positive_float
    parser.add_argument("--sweep", type=seconds, default=30.0, help="sweep interval (seconds)")
    parser.add_argument(
        "--leader-retry", type=seconds, default=5.0, help="a standby tries to lead every (s)"
    )
    parser.add_argument(
        "--stale-after",
        type=seconds,
        default=120.0,
        help="re-evaluate a fire left half-done after (s)",
    )
    return parser


async def _run(settings: Settings, policies: PolicySet, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        # this runner starts the scheduler itself, with its own knobs: not open_fleet's too
        open_fleet(
            settings.model_copy(update={"policies": PoliciesSpec(enabled=False)}), worker=args.name
        ) as fleet,
        run_policies(
            fleet,
            policies,
            worker=args.name,
            sweep_interval=args.sweep,
            leader_retry=args.leader_retry,
            stale_after=timedelta(seconds=args.stale_after),
        ),
    ):
        structlog.get_logger("fleet.policies").info("policy_runner_started", worker=args.name)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_with_defaults(args.config)
        policies = load_policy_files(
            args.policies,
            calendar_dir=args.calendars,
            endpoints={e.name for e in settings.endpoints},
        )
    except (SettingsError, PolicyError) as exc:
        sys.stderr.write(f"fleet: configuration error: {exc}\n")
        return 2
    configure_logging(settings.logging.format, settings.logging.level)
    asyncio.run(_run(settings, policies, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
