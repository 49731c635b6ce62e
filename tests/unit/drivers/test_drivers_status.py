"""Vendor status words -> the internal vocabulary (api-digest 2.5, Table A-4)."""

from __future__ import annotations

import pytest

from fleet.domain import ServerStatus
from fleet.drivers.status import normalise_status

S = ServerStatus


@pytest.mark.parametrize(
    ("status", "task", "vm", "expected"),
    [
        # Huawei Table A-4 rows (status, task_state) -> what is happening
        ("ACTIVE", None, "active", S.RUNNING),
        ("ACTIVE", "powering-off", "active", S.STOPPING),
        ("SHUTOFF", "powering-on", "stopped", S.STARTING),
        ("SHUTOFF", None, "stopped", S.STOPPED),
        ("REBOOT", "reboot_started", "active", S.REBOOTING),
        ("HARD_REBOOT", "rebooting_hard", "active", S.REBOOTING),
        ("RESIZE", "resize_migrating", "stopped", S.RESIZING),
        ("REVERT_RESIZE", "resize_reverting", "resized", S.RESIZING),
        ("VERIFY_RESIZE", None, "resized", S.VERIFY_RESIZE),
        ("VERIFY_RESIZE", "", "resized", S.VERIFY_RESIZE),  # "" and null are equal
        ("ACTIVE", "deleting", "active", S.DELETING),
        ("DELETED", None, "deleted", S.DELETED),
        ("SOFT_DELETED", None, "soft_deleted", S.DELETED),
        ("ERROR", None, "error", S.ERROR),
        ("BUILD", "spawning", "building", S.BUILDING),
        ("MIGRATING", "migrating", "active", S.BUSY),
        ("REBUILD", "rebuild_spawning", "active", S.BUSY),
        ("SHELVED_OFFLOADED", None, "shelved_offloaded", S.SHELVED),
        ("PAUSED", None, "paused", S.PAUSED),
        ("SUSPENDED", None, "suspended", S.SUSPENDED),
        # BMS vocabulary: vm_state `shutoff`
        ("SHUTOFF", None, "shutoff", S.STOPPED),
        # EasyStack list example: UNKNOWN with no vm_state
        ("UNKNOWN", None, None, S.UNKNOWN),
        # unknown status, known vm_state
        ("WEIRD", None, "stopped", S.STOPPED),
        (None, None, None, S.UNKNOWN),
        ("active", None, None, S.RUNNING),
    ],
)
def test_normalise(status: str | None, task: str | None, vm: str | None, expected: S) -> None:
    assert normalise_status(status, task, vm) is expected
