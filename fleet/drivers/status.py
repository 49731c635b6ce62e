"""Vendor status words -> `ServerStatus` (api-digest 2.5).

The task state is read first because it says what is happening now: Huawei reports a server being
stopped as status ACTIVE with task `powering-off` (Table A-4), which is STOPPING, not RUNNING. Then
the status; the vm_state only when the status says nothing (compared case-insensitively, and both
`stopped` and BMS's `shutoff` accepted, A-5).
"""

from __future__ import annotations

from fleet.domain import ServerStatus

S = ServerStatus

_TASK_STATES: dict[str, ServerStatus] = {
    "powering-off": S.STOPPING,
    "powering-on": S.STARTING,
    "rebooting": S.REBOOTING,
    "reboot_pending": S.REBOOTING,
    "reboot_started": S.REBOOTING,
    "rebooting_hard": S.REBOOTING,
    "reboot_pending_hard": S.REBOOTING,
    "reboot_started_hard": S.REBOOTING,
    "resize_prep": S.RESIZING,
    "resize_migrating": S.RESIZING,
    "resize_migrated": S.RESIZING,
    "resize_finish": S.RESIZING,
    "resize_reverting": S.RESIZING,
    "resize_confirming": S.RESIZING,
    "deleting": S.DELETING,
    "soft-deleting": S.DELETING,
    "scheduling": S.BUILDING,
    "block_device_mapping": S.BUILDING,
    "networking": S.BUILDING,
    "spawning": S.BUILDING,
}

_STATUSES: dict[str, ServerStatus] = {
    "ACTIVE": S.RUNNING,
    "SHUTOFF": S.STOPPED,
    "STOPPED": S.STOPPED,
    "REBOOT": S.REBOOTING,
    "HARD_REBOOT": S.REBOOTING,
    "RESIZE": S.RESIZING,
    "REVERT_RESIZE": S.RESIZING,
    "VERIFY_RESIZE": S.VERIFY_RESIZE,
    "BUILD": S.BUILDING,
    "BUILDING": S.BUILDING,
    "ERROR": S.ERROR,
    "DELETED": S.DELETED,
    "SOFT_DELETED": S.DELETED,
    "MIGRATING": S.BUSY,
    "REBUILD": S.BUSY,
    "RESCUE": S.BUSY,
    "PASSWORD": S.BUSY,
    "PAUSED": S.PAUSED,
    "PAUSE": S.PAUSED,
    "SUSPENDED": S.SUSPENDED,
    "SHELVED": S.SHELVED,
    "SHELVED_OFFLOADED": S.SHELVED,
    "UNKNOWN": S.UNKNOWN,
}

_VM_STATES: dict[str, ServerStatus] = {
    "active": S.RUNNING,
    "stopped": S.STOPPED,
    "shutoff": S.STOPPED,
    "resized": S.VERIFY_RESIZE,
    "building": S.BUILDING,
    "error": S.ERROR,
    "deleted": S.DELETED,
    "soft_deleted": S.DELETED,
    "paused": S.PAUSED,
    "suspended": S.SUSPENDED,
    "shelved": S.SHELVED,
    "shelved_offloaded": S.SHELVED,
    "reboot": S.REBOOTING,
}

_BUSY_TASK_PREFIXES = ("rebuild", "migrat", "shelv", "unshelv", "rescu", "image_")


def normalise_status(
    status: str | None, task_state: str | None = None, vm_state: str | None = None
) -> ServerStatus:
    task = (task_state or "").strip().lower()
    if task:
        if task in _TASK_STATES:
            return _TASK_STATES[task]
        if task.startswith(_BUSY_TASK_PREFIXES):
            return S.BUSY
    word = (status or "").strip().upper()
    found = _STATUSES.get(word)
    if found is not None and found is not S.UNKNOWN:
        return found
    return _VM_STATES.get((vm_state or "").strip().lower(), S.UNKNOWN)
