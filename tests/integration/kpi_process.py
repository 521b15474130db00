"""The KPI process (`python -m orders.kpis`) as a subprocess, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from kit.settings import REPO_ROOT
from kit.testing.pipeline import wait_until
from kit.testing.servers import kafkactl


class KpiProcess:
    """`python -m orders.kpis` as a subprocess, on its own port, app id and source topic."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        work_dir: Path,
        *,
        partitions: int = 6,
        grace_s: float = 1.0,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.port = kafkactl().free_port()
        self.log_path = work_dir / "kpis.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            # An app id of its own: a consumer group and changelogs no earlier run has used.
            "KPIS_APP_ID": f"{topic}-{uuid.uuid4().hex[:8]}",
            "KPIS_SOURCE_TOPIC": topic,
            "KPIS_TOPIC_PARTITIONS": str(partitions),
            "KPIS_HTTP_PORT": str(self.port),
            "KPIS_WINDOW_GRACE_S": str(grace_s),
            "KPIS_DATA_DIR": str(work_dir / "kpis-data"),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orders.kpis"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        wait_until(self._healthy, 60, "the KPI process to answer /health")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the KPI process did not stop on SIGTERM") from None

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the KPI process exited with {self.process.returncode}:\n{tail}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
