"""A broker that cannot start says why, instead of hanging."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kit.testing.servers import KAFKACTL, kafkactl


def test_a_taken_port_is_named_before_any_jvm_starts(tmp_path: Path) -> None:
    ctl = kafkactl()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = ctl.EmbeddedBroker(tmp_path / "kafka", port=port, controller_port=ctl.free_port())
        with pytest.raises(ctl.KafkaCtlError, match=rf"127\.0\.0\.1:{port} is already in use"):
            broker.start(timeout=30)


def test_missing_java_is_reported_by_the_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(KAFKACTL),
            "start",
            "--data-dir",
            str(tmp_path / "kafka"),
            "--port",
            "0",
            "--controller-port",
            "0",
            "--timeout",
            "20",
        ],
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},  # no java on this PATH
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "java not found" in result.stderr


def test_a_bad_broker_setting_fails_fast_with_the_brokers_own_error(tmp_path: Path) -> None:
    ctl = kafkactl()
    broker = ctl.EmbeddedBroker(
        tmp_path / "kafka", port=0, controller_port=0, overrides={"num.io.threads": "abc"}
    )
    with pytest.raises(ctl.BrokerStartError, match=r"num\.io\.threads"):
        broker.start(timeout=60)
