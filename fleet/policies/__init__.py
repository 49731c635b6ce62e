"""Scheduled policies: cron + time zone + an operation, fired exactly once per slot (see
docs/policies.md). Import from the defining modules (`fleet.policies.scheduler.run_policies`,
`fleet.policies.service.PolicyService`, `fleet.policies.files.load_policy_files`)."""
