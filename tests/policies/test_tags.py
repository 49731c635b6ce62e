"""Per-server tag rules: opt-out, snooze (until its day, not after), expiry, marked-for-op, mark."""

from __future__ import annotations

from datetime import date

from fleet.domain import Provider, ServerRef, ServerStatus
from fleet.policies.model import Policy, compile_policy, parse_spec
from fleet.policies.tags import NOT_DUE, mark_value, parse_marker, verdict


def policy(**changes: object) -> Policy:
    base = {"name": "p", "cron": "0 20 * * *", "timezone": "Asia/Shanghai", "action": "stop"}
    return compile_policy(parse_spec({**base, **changes}))


def server(**tags: str) -> ServerRef:
    return ServerRef(
        endpoint="ecs",
        provider=Provider.HUAWEI_ECS,
        id="s1",
        name="dev-1",
        status=ServerStatus.RUNNING,
        tags={k.replace("_", "-"): v for k, v in tags.items()},
    )


DAY = date(2026, 12, 1)


def test_a_plain_server_is_acted_on() -> None:
    assert verdict(policy(), server(env="dev"), DAY).act


def test_snooze_is_honoured_up_to_and_including_its_day_and_not_after() -> None:
    p, s = policy(), server(fleet_snooze_until="2026-12-01")
    before = verdict(p, s, date(2026, 11, 30))
    on = verdict(p, s, DAY)
    after = verdict(p, s, date(2026, 12, 2))
    assert (before.act, on.act, after.act) == (False, False, True)
    assert on.reason == "snoozed until 2026-12-01"


def test_an_unreadable_snooze_still_protects_the_server_and_says_why() -> None:
    v = verdict(policy(), server(fleet_snooze_until="next week"), DAY)
    assert not v.act and "unreadable" in v.reason


def test_opt_out_tag_with_value_or_any_value() -> None:
    assert not verdict(policy(), server(fleet_opt_out="true"), DAY).act
    assert verdict(policy(), server(fleet_opt_out="false"), DAY).act
    any_value = policy(opt_out_tag="keep-on")
    assert not verdict(any_value, server(keep_on="whatever"), DAY).act
    assert verdict(policy(opt_out_tag=""), server(fleet_opt_out="true"), DAY).act


def test_custom_snooze_key() -> None:
    p = policy(snooze_tag="hold")
    assert not verdict(p, server(hold="2026-12-05"), DAY).act
    assert verdict(p, server(fleet_snooze_until="2026-12-05"), DAY).act


def cleanup(action: str = "stop") -> Policy:
    extra: dict[str, object] = {"mode": "cleanup", "action": action}
    if action == "delete":
        extra |= {"allow_delete": True, "guard": {"max_servers": 10}}
    return policy(**extra)


def test_expiry_is_due_once_its_day_is_in_the_past() -> None:
    p = cleanup()
    assert verdict(p, server(expires_at="2026-11-30"), DAY).reason == "expired 2026-11-30"
    assert verdict(p, server(expires_at="2026-11-30"), DAY).act
    assert verdict(p, server(expires_at="2026-12-01"), DAY).reason == NOT_DUE
    assert not verdict(p, server(), DAY).act


def test_marked_for_op_is_due_on_its_day_for_its_action_only() -> None:
    stop, delete = cleanup("stop"), cleanup("delete")
    marked = server(fleet_op="stop.2026-12-01")
    assert verdict(stop, marked, DAY).act
    assert verdict(stop, marked, DAY).reason == "marked stop.2026-12-01"
    assert not verdict(stop, marked, date(2026, 11, 30)).act
    assert not verdict(delete, marked, DAY).act  # marked for stop, not for delete
    assert verdict(delete, server(fleet_op="delete.2026-11-01"), DAY).act


def test_marks_in_the_older_at_form_are_still_read() -> None:
    stop, delete = cleanup("stop"), cleanup("delete")
    marked = server(fleet_op="stop@2026-12-01")
    assert verdict(stop, marked, DAY).act
    assert verdict(stop, marked, DAY).reason == "marked stop.2026-12-01"
    assert not verdict(stop, marked, date(2026, 11, 30)).act
    assert not verdict(delete, marked, DAY).act
    assert verdict(delete, server(fleet_op="delete@2026-11-01"), DAY).act


def test_unreadable_markers_are_skipped_with_the_reason() -> None:
    v = verdict(cleanup(), server(fleet_op="stop-soon"), DAY)
    assert not v.act and "unreadable" in v.reason
    v = verdict(cleanup(), server(expires_at="someday"), DAY)
    assert not v.act and "unreadable" in v.reason
    assert parse_marker("delete.2026-12-01") == ("delete", date(2026, 12, 1))
    assert parse_marker("tag_add.2026-12-01") == ("tag_add", date(2026, 12, 1))
    assert parse_marker("delete@2026-12-01") == ("delete", date(2026, 12, 1))
    assert parse_marker("@2026-12-01") is None
    assert parse_marker(".2026-12-01") is None
    assert parse_marker("delete.soon") is None


def test_snooze_and_opt_out_apply_to_cleanup_too() -> None:
    p = cleanup()
    assert not verdict(p, server(expires_at="2026-01-01", fleet_snooze_until="2026-12-31"), DAY).act
    assert not verdict(p, server(expires_at="2026-01-01", fleet_opt_out="true"), DAY).act


def test_mark_policy_writes_a_date_n_days_ahead_and_leaves_marked_servers() -> None:
    p = policy(mode="mark", action=None, mark={"op": "delete", "days": 14})
    assert mark_value(p, DAY) == ("fleet-op", "delete.2026-12-15")
    assert verdict(p, server(), DAY).act
    already = verdict(p, server(fleet_op="stop@2026-12-03"), DAY)
    assert not already.act and already.reason.startswith("already marked")


def test_a_created_server_with_an_expiry_tag_is_due_for_the_delete_cleanup() -> None:
    """A create tags its servers `fleet-op=<operation id>` (its identity, not a mark) and may give
    them `expires-at`: the clean-up deletes them once the day has passed."""
    created = server(expires_at="2026-11-30", fleet_op="3f2a9c1b5d6e4f708192a3b4c5d6e7f8")
    v = verdict(cleanup("delete"), created, DAY)
    assert v.act and v.reason == "expired 2026-11-30"
    later = server(expires_at="2026-12-31", fleet_op="3f2a9c1b5d6e4f708192a3b4c5d6e7f8")
    v = verdict(cleanup("delete"), later, DAY)
    assert not v.act and v.reason == NOT_DUE  # the op tag is no (unreadable) mark
    no_expiry = server(fleet_op="3f2a9c1b5d6e4f708192a3b4c5d6e7f8")
    assert verdict(cleanup("delete"), no_expiry, DAY).reason == NOT_DUE
    garbage = server(expires_at="2026-12-31", fleet_op="stop-soon")
    assert "unreadable" in verdict(cleanup("delete"), garbage, DAY).reason
