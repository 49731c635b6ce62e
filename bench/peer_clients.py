"""What users would otherwise run for a bulk stop, written with the libraries they would use
(`bench/peers.py` runs them against the simulator).

Each contender is synchronous, as those libraries are, lists its targets itself and returns the
number of action calls that raised. Every wait of theirs is the production one scaled by the
bench's factor (`scale`: 60 s over the simulated window), as the windows and a stop's duration
are: Cloud Custodian's retry starts at `min_delay = 1 / scale` (1 s in production) and its job
wait polls every `1 / scale` s (1 s in production).

- EasyStack (openstacksdk 4.x): `naive` sends every `stop_server` at once (`asyncio.gather` over
  the event loop's default thread pool); `c7n-retry` is the same with each call wrapped in Cloud
  Custodian's `c7n.utils.get_retry` (8 attempts, jittered exponential backoff, retrying 429);
  `sdk-rate-limit` is openstacksdk's own client-side `rate_limit` (calls per second for the
  compute service) set to the budget's average rate, the calls sent from the same pool.
- Huawei ECS (huaweicloudsdkecs): Cloud Custodian's Huawei provider (c7n-huaweicloud 0.1.1)
  lists ECSs 100 per page (`list_servers_details`, page numbers as `offset`); its `instance-stop`
  sends one `batch_stop_servers` call, refuses more than 1,000 servers and does not wait; its
  own job wait (`wait_job_end`, used by its EVS actions) polls `show_job` once a second, 120
  times at most. `c7n-chunks` runs that call on 1,000-server chunks one after the other, each
  followed by that job wait, a chunk whose call fails being given up (the error logged, as the
  action does); `c7n-chunks+retry` wraps the call in `get_retry` as above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import openstack
import openstack.config
import openstack.connection
import openstack.exceptions
from botocore.exceptions import ClientError
from c7n.utils import get_retry
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkecs.v2 import (
    BatchStopServersOption,
    BatchStopServersRequest,
    BatchStopServersRequestBody,
    EcsClient,
    ListServersDetailsRequest,
    ServerId,
    ShowJobRequest,
)

T = TypeVar("T")
log = logging.getLogger("bench.peers")
C7N_PAGE = 100  # c7n_huaweicloud.query.DEFAULT_LIMIT_SIZE
C7N_CHUNK = 1000  # the most servers c7n-huaweicloud's instance-stop accepts
C7N_JOB_POLLS = 120  # c7n_huaweicloud's wait_job_end(timeout=120), one poll a second


def c7n_retry(scale: float) -> Callable[..., Any]:
    """Cloud Custodian's retry (8 attempts, jittered backoff from `min_delay`) on 429."""
    return get_retry(("429",), max_attempts=8, min_delay=1.0 / scale)


def _as_client_error(fn: Callable[[], T], status: Callable[[Exception], int | None]) -> T:
    """Call `fn`; a 429 becomes the botocore `ClientError` that `get_retry` retries."""
    try:
        return fn()
    except Exception as exc:
        if status(exc) == 429:
            raise ClientError({"Error": {"Code": "429", "Message": str(exc)}}, "Stop") from exc
        raise


# --- EasyStack, openstacksdk ------------------------------------------------------------------


def os_connection(ep: dict[str, str], rate_limit: float | None = None) -> Any:
    """An openstacksdk connection from the simulator's published account (no clouds.yaml)."""
    region = openstack.config.get_cloud_region(
        load_yaml_config=False,
        load_envvars=False,
        auth_type="password",
        auth={
            k: ep[k]
            for k in (
                "auth_url",
                "username",
                "password",
                "project_name",
                "user_domain_name",
                "project_domain_name",
            )
        },
        region_name=ep["region_name"],
        identity_api_version="3",
    )
    return openstack.connection.Connection(config=region, rate_limit=rate_limit)


def _os_status(exc: Exception) -> int | None:
    if isinstance(exc, openstack.exceptions.HttpException):
        return exc.status_code
    return None


def os_stop_all(conn: Any, call: Callable[[Callable[[], Any]], Any]) -> int:
    """List the ACTIVE servers, then `asyncio.gather` every stop through the default pool."""
    servers = [s for s in conn.compute.servers(details=True) if s.status == "ACTIVE"]

    async def gather() -> list[object]:
        return await asyncio.gather(
            *(asyncio.to_thread(call, lambda s=s: conn.compute.stop_server(s)) for s in servers),
            return_exceptions=True,
        )

    return sum(isinstance(r, Exception) for r in asyncio.run(gather()))


def easystack(who: str, ep: dict[str, str], limit: int, period: float, scale: float) -> int:
    if who == "naive":
        return os_stop_all(os_connection(ep), lambda fn: fn())
    if who == "c7n-retry":
        retry = c7n_retry(scale)
        return os_stop_all(os_connection(ep), lambda fn: retry(_as_client_error, fn, _os_status))
    if who == "sdk-rate-limit":
        return os_stop_all(os_connection(ep, rate_limit=limit / period), lambda fn: fn())
    raise ValueError(f"who: unknown EasyStack contender {who!r}")


# --- Huawei ECS, Cloud Custodian's pattern -----------------------------------------------------


def ecs_client(ep: dict[str, str]) -> Any:
    credentials = BasicCredentials(ep["ak"], ep["sk"], ep["project_id"])
    return (
        EcsClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([ep["ecs_url"]])
        .build()
    )


def _c7n_list(client: Any) -> list[str]:
    """The ACTIVE ECSs, listed as c7n-huaweicloud's resource manager does."""
    found: list[str] = []
    page = 1
    while True:
        servers = client.list_servers_details(
            ListServersDetailsRequest(limit=C7N_PAGE, offset=page)
        ).servers
        found += [s.id for s in servers if s.status == "ACTIVE"]
        if len(servers) < C7N_PAGE:
            return found
        page += 1


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _wait_job_end(client: Any, job_id: str, poll: float) -> None:
    """c7n-huaweicloud's `wait_job_end`: poll until SUCCESS, at most 120 times."""
    for _ in range(C7N_JOB_POLLS):
        try:
            if client.show_job(ShowJobRequest(job_id=job_id)).status.upper() == "SUCCESS":
                return
            time.sleep(poll)
        except ClientRequestException as exc:
            log.error("job %s: %s %s", job_id, exc.status_code, exc.error_msg)
    log.error("job %s: timeout", job_id)


def _ecs_status(exc: Exception) -> int | None:
    return exc.status_code if isinstance(exc, ClientRequestException) else None


def huawei_ecs(who: str, ep: dict[str, str], scale: float) -> int:
    if who not in ("c7n-chunks", "c7n-chunks+retry"):
        raise ValueError(f"who: unknown Huawei ECS contender {who!r}")
    client = ecs_client(ep)
    retry = c7n_retry(scale) if who.endswith("+retry") else None
    failed = 0
    for chunk in _chunks(_c7n_list(client), C7N_CHUNK):
        body = BatchStopServersRequestBody(
            os_stop=BatchStopServersOption(servers=[ServerId(id=i) for i in chunk], type="SOFT")
        )

        def stop(body: BatchStopServersRequestBody = body) -> Any:
            return client.batch_stop_servers(BatchStopServersRequest(body=body))

        try:
            answer = stop() if retry is None else retry(_as_client_error, stop, _ecs_status)
        except (ClientRequestException, ClientError) as exc:
            log.error("chunk of %d servers not stopped: %s", len(chunk), exc)
            failed += 1
            continue
        _wait_job_end(client, answer.job_id, 1.0 / scale)
    return failed


def run_contender(
    task: str, who: str, ep: dict[str, Any], limit: int, period: float, scale: float
) -> int:
    """Run one contender to its end (in a fresh thread pool: nothing of one run is left to the
    next); the number of action calls that failed for good."""
    with ThreadPoolExecutor(1) as pool:
        if task.startswith("easystack"):
            return pool.submit(easystack, who, ep["openstack"], limit, period, scale).result()
        return pool.submit(huawei_ecs, who, ep["huawei"], scale).result()
