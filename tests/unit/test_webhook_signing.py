"""Webhook signing and the pure parts of webhooks: the Standard Webhooks signature (checked
against the scheme's published example and the independent `standardwebhooks` verifier), secret
references, filters and fire outcomes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fleet.policies.notify import outcome
from fleet.webhooks.events import Event, Scope, Subscription
from fleet.webhooks.signing import SecretError, check_ref, headers, key_of, resolve, signature

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_the_signature_matches_the_schemes_published_example() -> None:
    key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    sig = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_an_independent_verifier_accepts_a_signed_event_and_refuses_a_changed_one() -> None:
    now = datetime.now(UTC)
    event = Event("evt_1", "fleet.operation.created", "/v1/operations", "op1", now, {"a": 1})
    body = event.body()
    sent = headers(key_of(SECRET), event.id, int(now.timestamp()), body)
    assert sent["webhook-signature"].startswith("v1,")
    parsed = Webhook(SECRET).verify(body, sent)
    assert parsed["specversion"] == "1.0" and parsed["id"] == "evt_1"
    assert set(parsed) >= {"specversion", "id", "source", "type", "time", "subject", "data"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b'"a":1', b'"a":2'), sent)


def test_secret_references(tmp_path: Path) -> None:
    assert check_ref("env:HOOK_SECRET") == "env:HOOK_SECRET"
    with pytest.raises(SecretError, match="literal secret is never stored"):
        check_ref(SECRET)
    for bad in ("plain", "env:", "env:A-B", "vault:x"):
        with pytest.raises(SecretError):
            check_ref(bad)
    assert resolve("env:S", {"S": SECRET}) == b"k" * 32
    with pytest.raises(SecretError, match="not set"):
        resolve("env:S", {})
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert resolve(f"file:{path}") == b"k" * 32
    path.write_text("whsec_c2hvcnQ=")  # 5 bytes
    with pytest.raises(SecretError, match="5 bytes") as caught:
        resolve(f"file:{path}")
    assert "c2hvcnQ" not in str(caught.value)  # the message never carries the secret


def test_filters_and_event_lists() -> None:
    sub = Subscription("s", "http://x", ("fleet.operation.finished",), {"endpoint": ("a",)})
    assert sub.wants("fleet.operation.finished", Scope(("a", "b"), None, "failed"))
    assert not sub.wants("fleet.operation.finished", Scope(("b",), None, "failed"))
    assert not sub.wants("fleet.operation.finished", Scope((), None, "failed"))
    assert not sub.wants("fleet.operation.created", Scope(("a",)))
    every = Subscription("s", "http://x", ("*",), {"policy": ("p",), "state": ("refused",)})
    assert every.wants("fleet.policy.fired", Scope((), "p", "refused"))
    assert not every.wants("fleet.policy.fired", Scope((), "p", "fired"))
    assert not every.wants("fleet.webhook.test", Scope((), "p", "refused"))


def test_fire_outcomes() -> None:
    assert outcome("skipped", "no servers to act on") == "nothing_to_do"
    assert outcome("skipped", "missed by 2h (misfire_grace 30m)") == "misfired"
    assert outcome("skipped", "skip day 2026-12-24 (holidays)") == "skipped"
    assert outcome("skipped", "missed; coalesced into the slot at 2026-12-07T20:00Z") == "skipped"
    assert outcome("fired", None) == "fired" and outcome("refused", "x") == "refused"
