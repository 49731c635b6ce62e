import json
import logging

import pytest
import structlog

from fleet.logging import configure_logging, redact


def test_redact_hides_secret_keys_at_any_depth() -> None:
    data = {
        "headers": {
            "X-Auth-Token": "abc",
            "Authorization": "SDK-HMAC-SHA256 ...",
            "Accept": "json",
        },
        "auth": [{"password": "p", "name": "u"}],
        "sk": "s",
        "task": "keep",
    }
    out = redact(data)
    assert out == {
        "headers": {"X-Auth-Token": "***", "Authorization": "***", "Accept": "json"},
        "auth": [{"password": "***", "name": "u"}],
        "sk": "***",
        "task": "keep",
    }


def test_json_lines_carry_bound_context_and_no_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    structlog.contextvars.bind_contextvars(operation_id="op-1", server_id="srv-9")
    try:
        structlog.get_logger().info("subjob_claimed", password="hunter2", endpoint="ecs-a")
        structlog.get_logger().debug("not_shown")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "subjob_claimed"
    assert (line["operation_id"], line["server_id"], line["endpoint"]) == ("op-1", "srv-9", "ecs-a")
    assert line["password"] == "***"
    assert "hunter2" not in json.dumps(line)


def json_lines(err: str) -> list[dict[str, object]]:
    """Every line of `err` is one JSON object (a traceback inside a line does not break it)."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_stdlib_records_are_json_lines_with_secrets_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "info")
    try:
        logging.getLogger("x").warning("disk %s is full", "sda", extra={"password": "hunter2"})
        logging.getLogger("x").info("below the libraries' level")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("x.y").exception("failed")
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "hunter2" not in err
    first, second = json_lines(err)
    assert (first["event"], first["logger"], first["level"], first["password"]) == (
        "disk sda is full",
        "x",
        "warning",
        "***",
    )
    assert "timestamp" in first
    assert (second["event"], second["logger"], second["level"]) == ("failed", "x.y", "error")
    assert "RuntimeError: boom" in str(second["exception"])
