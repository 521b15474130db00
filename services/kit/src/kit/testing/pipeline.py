"""The five services as real processes on a given broker, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx

from kit.settings import REPO_ROOT
from kit.testing.gateway import create_api_key, gateway_client
from kit.testing.servers import kafkactl

SERVICES = ("orders", "inventory", "payments", "fulfillment", "notifications")
T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.1
) -> T:
    """Polls `condition` until it returns something truthy; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


class Pipeline:
    def __init__(
        self,
        work_dir: Path,
        bootstrap: str,
        *,
        database_urls: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.bootstrap = bootstrap
        self.database_urls = dict(database_urls or {})
        for service in SERVICES:
            self.database_urls.setdefault(service, f"sqlite:///{work_dir / (service + '.db')}")
        self.env = dict(env or {})
        # Per-service overrides on top of `env`, set by `restart`; empty means the defaults.
        self.overrides: dict[str, dict[str, str]] = {}
        self.ports = dict(zip(SERVICES, kafkactl().free_ports(len(SERVICES)), strict=True))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._api_keys: dict[tuple[str, tuple[str, ...]], str] = {}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def log_path(self, service: str) -> Path:
        return self.work_dir / f"{service}.log"

    def service_env(self, service: str) -> dict[str, str]:
        """The environment `service` runs with (also right for its admin CLI)."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_urls[service],
            "DATA_DIR": str(self.work_dir),
            "HTTP_PORT": str(self.ports[service]),
            **self.env,
            **self.overrides.get(service, {}),
        }

    def api_key(
        self,
        client_id: str = "storefront-1",
        scopes: tuple[str, ...] = ("orders:read", "orders:write"),
    ) -> str:
        """A gateway API key of `client_id` with `scopes`, created once per pipeline."""
        if (client_id, scopes) not in self._api_keys:
            self._api_keys[(client_id, scopes)] = create_api_key(
                self.service_env("orders"), client_id, scopes
            )
        return self._api_keys[(client_id, scopes)]

    def gateway(self, client_id: str = "storefront-1", **options: Any) -> httpx.Client:
        """An HTTP client of the gateway authenticated as `client_id`, for every scope."""
        return gateway_client(self.url("orders"), self.api_key(client_id), **options)

    def start(self, *services: str, timeout_s: float = 60) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for service in services or SERVICES:
            env = self.service_env(service)
            log = self.log_path(service).open("ab")
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", service],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        try:
            for service in services or SERVICES:
                wait_until(partial(self._healthy, service), timeout_s, f"{service} to be healthy")
        except BaseException:
            # Never leave the healthy ones of this start running behind a failed start.
            self.stop(*(services or SERVICES))
            raise

    def _healthy(self, service: str) -> bool:
        process = self.processes[service]
        if process.poll() is not None:
            tail = self.log_path(service).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{service} exited with {process.returncode}:\n{tail}")
        try:
            return httpx.get(self.url(service) + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, *services: str, kill: bool = False) -> None:
        for service in services or tuple(self.processes):
            process = self.processes.pop(service, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(
        self,
        service: str,
        *,
        env: Mapping[str, str] | None = None,
        kill: bool = False,
        timeout_s: float = 60,
    ) -> None:
        """Stops one service and starts it again with `env` over the pipeline's environment.

        The overrides last until the next restart: `restart(service)` brings the defaults back.
        `kill=True` is a crash (SIGKILL), so nothing gets the chance to shut down cleanly."""
        self.stop(service, kill=kill)
        self.overrides[service] = dict(env or {})
        self.start(service, timeout_s=timeout_s)

    def running(self, service: str) -> bool:
        process = self.processes.get(service)
        return process is not None and process.poll() is None

    def pids(self) -> dict[str, int]:
        return {service: process.pid for service, process in self.processes.items()}
