"""What remembering N ids costs: a `set` of the ids against `jobs.seen.SeenIds`
(`python bench/seen_ids.py [--json] [--n N]`).

The ids are made one by one, as a listing's JSON parser makes them (36 characters, as ECS ids),
1% of them seen twice; each structure is filled in turn under tracemalloc (what stays held once
every id is seen, and the peak while filling), then again without it for the CPU time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.seen import SeenIds


def _ids(n: int) -> Iterator[str]:
    for i in range(n + n // 100):
        yield str(uuid.UUID(int=(i % n) * 7919 + 12345))


def _with_set(ids: Iterator[str]) -> tuple[object, int]:
    seen: set[str] = set()
    new = 0
    for i in ids:
        if i not in seen:
            seen.add(i)
            new += 1
    return seen, new


def _with_table(ids: Iterator[str]) -> tuple[object, int]:
    seen = SeenIds()
    return seen, sum(seen.add(i) for i in ids)


def measure(n: int, fill: Callable[[Iterator[str]], tuple[object, int]]) -> dict[str, float]:
    tracemalloc.start()
    held, kept = fill(_ids(n))
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del held
    t0 = time.process_time()
    fill(_ids(n))
    cpu = time.process_time() - t0
    return {
        "kept": kept,
        "held_mb": round(current / 1e6, 1),
        "peak_mb": round(peak / 1e6, 1),
        "cpu_s": round(cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    parser.add_argument("--n", type=int, default=1_000_000, help="distinct ids (1,000,000)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n: at least 1")
    out = {"n": args.n, "set": measure(args.n, _with_set), "seen_ids": measure(args.n, _with_table)}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
