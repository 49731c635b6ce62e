"""Scheduled policies: cron + time zone + an operation, fired exactly once per slot (see
docs/policies.md).

`model` is a policy and its checks, `files` loads policy files, `service` (`PolicyService`) is
what the API and the scheduler call, every request to act checked by the one door
(`fleet.engine.admission`); `scheduler` starts the alarm clock and the leader loop
(`run_policies`), `leader` decides which replica fires, `firing` fires a due slot exactly once,
`targets` chooses its servers; `store` (with `store_marks`, `store_restore`, `tables`) holds
their SQL. Per-server schedules: `periods` (a named schedule and its desired state), `offhours`
(the schedule policy mode), `schedules` (`ScheduleService`, what `/v1/schedules` calls) and
`store_schedules`. Import from the defining modules.
"""

__all__ = ["files", "model", "periods", "scheduler", "schedules", "service", "store"]
