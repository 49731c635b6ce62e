"""structlog set-up: JSON lines in production, readable in a terminal, secrets redacted.

Context (operation id, sub-job id, endpoint, server id) is bound with contextvars by the code that
handles a sub-job, so every line it logs carries them. Event names are constant and past tense
(`subjob_claimed`), so logs can be counted and searched.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Literal

import structlog

# Keys whose values are never logged, whatever their nesting.
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|authorization|x-auth-token|x-subject-token|\bsk\b|signature|cookie)",
    re.IGNORECASE,
)
REDACTED = "***"


def redact(value: object) -> object:
    """Recursively replace the values of secret-looking keys."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def _redact_processor(
    _logger: object, _name: str, event_dict: MutableMapping[str, object]
) -> MutableMapping[str, object]:
    for key in list(event_dict):
        if key != "event" and _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact(event_dict[key])
    return event_dict


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted (see `_stderr_logger`)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _shared_processors() -> list[structlog.typing.Processor]:
    """What every line gets, whether fleet's (structlog) or a library's (stdlib `logging`)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_processor,
        structlog.processors.format_exc_info,
    ]


def _stdlib_handler(renderer: structlog.typing.Processor) -> logging.Handler:
    """stdlib records (aiohttp's, asyncio's, SQLAlchemy's, ...) rendered like fleet's own lines:
    one JSON object per line in the JSON format, with the record's logger name and `extra`."""
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                *_shared_processors(),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    return handler


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "info"
) -> None:
    """Configure structlog, and stdlib logging to render through the same processors."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Resolve stderr when a logger is made, not now: whoever replaces sys.stderr later (a
        # test's capture, a daemon redirect) must not leave loggers writing to a closed file.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # Libraries log at warning and above only: their info lines are not fleet's events.
    logging.basicConfig(
        level=max(numeric, logging.WARNING), handlers=[_stdlib_handler(renderer)], force=True
    )
