"""Create benchmark (`python bench/create.py [--json] [--window S]`).

create_mixed: 1,000 servers created across ECS (400), BMS (240) and EasyStack (360), one create
operation per endpoint started together through the REST API of `fleet serve`, against create
budgets shaped like the defaults with a short window (`--window`, 3 s; the simulator enforces the
same limits): ECS 500 servers per call and no documented limit (given 1,000 servers per window
here), BMS 24 per call and 50 calls per window (seed 000), Nova one per call and 120 calls per
window (fleet's default). Every time is the production one scaled by 60 s / window: the windows,
the create (30 simulated seconds -> 1.5 s at the default) and the poll interval.

Lower bound: the slowest key spreads its calls over windows (the first window is free), then its
last server needs a create's time to become ACTIVE. Bar: makespan (first operation created to last
finished, by the service's clock) <= 1.10 x that bound, 0 throttled.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine import DONE, _get, _spans, service  # noqa: E402
from tests.e2e.procs import post_json, simulator_process  # noqa: E402

COUNTS = {"ecs": 400, "bms": 240, "es": 360}
KIND = {"ecs": "ecs", "bms": "bms", "es": "openstack"}


def _config(path: Path, sim: dict[str, Any], p: float, poll: float, create_s: float) -> None:
    hw, os_ = sim["huawei"], sim["openstack"]
    huawei = (
        f'ecs_url = "{hw["ecs_url"]}"\nbms_url = "{hw["bms_url"]}"\niam_url = "{hw["iam_url"]}"\n'
        f'project_id = "{hw["project_id"]}"\nregion = "{hw["region"]}"\n'
        'credentials = { ak_env = "BENCH_AK", sk_env = "BENCH_SK" }\n'
    )
    seconds = f"action_seconds = {{ create = {create_s} }}\n"
    path.write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{path.parent}/bench.db"
[service]
port = 0
[engine]
poll_interval = {poll}
idle_interval = 0.05
[policies]
enabled = false
[logging]
format = "json"
level = "warning"
[[endpoints]]
name = "ecs"
provider = "huawei-ecs"
budgets = {{ create = [{{ limit = 1000, period = {p}, unit = "servers" }}] }}
{seconds}{huawei}
[[endpoints]]
name = "bms"
provider = "huawei-bms"
budgets = {{ create = [{{ limit = 50, period = {p} }}], detail = [{{ limit = 500, period = {p} }}] }}
{seconds}{huawei}
[[endpoints]]
name = "es"
provider = "openstack"
budgets = {{ create = [{{ limit = 120, period = {p} }}], list = [{{ limit = 1000, period = {p} }}] }}
{seconds}flavour = "easystack"
auth_url = "{os_["auth_url"]}"
project_name = "{os_["project_name"]}"
region = "{os_["region_name"]}"
[endpoints.credentials]
username = "{os_["username"]}"
password_env = "BENCH_OS_PASSWORD"
user_domain_name = "Default"
project_domain_name = "Default"
"""
    )


def _body(sim: dict[str, Any], endpoint: str) -> dict[str, object]:
    kind = KIND[endpoint]
    need = sim["openstack"]["create"] if kind == "openstack" else sim["huawei"]["create"][kind]
    params = {
        "count": COUNTS[endpoint],
        "name": f"{endpoint}-{{n:04d}}",
        "flavor": need["flavor"],
        "image": need["image"],
        "network": need["network"],
        "availability_zone": need["availability_zone"],
    }
    if "vpc" in need:
        params["vpc"] = need["vpc"]
    return {"action": "create", "targets": {"endpoints": [endpoint]}, "params": params}


def create_mixed(period: float = 3.0) -> dict[str, object]:
    scale = 60.0 / period
    poll, create_s = 2.0 / scale, 30.0 / scale
    limits: dict[str, Any] = {
        "huawei-ecs:create": {"limit": 1000, "period": period, "unit": "servers"},
        "huawei-bms:create": {"limit": 50, "period": period},
        "openstack:create": {"limit": 120, "period": period},
    }
    world = f"seed = 6\nspeed = {scale}\n[generate]\necs = 10\nbms = 10\nopenstack = 10\n"
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "world.toml").write_text(world)
        with simulator_process(tmp / "world.toml", tmp / "sim.log") as url:
            sim = _get(f"{url}/_sim/endpoints")
            post_json(f"{url}/_sim/limits", limits)
            _config(tmp / "c.toml", sim, period, poll, create_s)
            env = {
                "BENCH_AK": sim["huawei"]["ak"],
                "BENCH_SK": sim["huawei"]["sk"],
                "BENCH_OS_PASSWORD": sim["openstack"]["password"],
            }
            with service(tmp / "c.toml", tmp, env) as svc:
                with ThreadPoolExecutor(len(COUNTS)) as pool:  # the three started together
                    ops = list(
                        pool.map(
                            lambda e: svc.call("POST", "/v1/operations", _body(sim, e)), COUNTS
                        )
                    )
                while any(op["state"] not in DONE for op in ops):
                    time.sleep(0.1)
                    ops = [svc.call("GET", f"/v1/operations/{op['id']}") for op in ops]
            stats: dict[str, Any] = _get(f"{url}/_sim/stats")["keys"]
            spans = _spans(_get(f"{url}/_sim/requests")["requests"])
            made = [s for s in _get(f"{url}/_sim/servers")["servers"] if "fleet-op" in s["tags"]]
    states = {op["state"] for op in ops}
    if states != {"succeeded"}:
        raise SystemExit(f"create_mixed: operations ended {states}")
    start = min(datetime.fromisoformat(op["created_at"]) for op in ops)
    end = max(datetime.fromisoformat(op["finished_at"]) for op in ops)
    makespan = (end - start).total_seconds()
    units = {k: int(v.get("units") or 0) for k, v in stats.items()}
    need = {
        key: (math.ceil(units[key] / int(lim["limit"])) - 1) * period
        for key, lim in limits.items()
        if units.get(key)
    }
    lower = max(need.values(), default=0.0) + create_s
    t0 = start.timestamp()
    for key, (first, last) in sorted(spans.items()):
        if key.endswith(":create") or key.endswith(":list") or key.endswith(":detail"):
            at = f"{first - t0:.2f} .. {last - t0:.2f} s"
            print(f"create_mixed: {key} requests {at}", file=sys.stderr)
    for op in ops:
        done = (datetime.fromisoformat(op["finished_at"]) - start).total_seconds()
        print(f"create_mixed: {op['targets']} servers finished at {done:.2f} s", file=sys.stderr)
    return {
        "servers": len(made),
        "makespan_s": round(makespan, 2),
        "lower_bound_s": round(lower, 2),
        "ratio": round(makespan / lower, 3),
        "throttled": sum(int(v["throttled"]) for v in stats.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--window", type=float, default=3.0, help="the budgets' period (s)")
    args = parser.parse_args()
    out = {"create_mixed": create_mixed(args.window)}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
