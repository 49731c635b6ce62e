"""`fleet simulate` on a port it cannot have: a message and exit 2, not a traceback."""

from __future__ import annotations

import socket

import pytest

from fleet.cli import main


def test_a_taken_port_exits_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["simulate", "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
