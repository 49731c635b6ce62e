"""The `fleet` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="serve the loopback cloud simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8700)
    sim.add_argument("--world", default=None, help="TOML world file")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument("--speed", type=float, default=None, help="simulated seconds per real second")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "simulate":
        from fleet.simulator.server import serve

        return serve(
            host=args.host, port=args.port, world=args.world, seed=args.seed, speed=args.speed
        )
    return 2


if __name__ == "__main__":
    sys.exit(main())
