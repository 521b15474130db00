"""A real Prometheus (Debian's package) scraping a running pipeline, with the shipped rules.

Used by the dashboard test and by `make dashboards` (the PNGs in docs/). The scrape config
is written for the pipeline's ports; the rule files are the ones `make run` loads.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kit.settings import REPO_ROOT
from kit.testing.pipeline import wait_until
from kit.testing.servers import kafkactl

RULES_DIR = REPO_ROOT / "deploy" / "prometheus" / "rules"


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector; raises with Prometheus' own error text."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{promql}: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_up(self) -> dict[str, bool]:
        """Scrape job → whether its last scrape succeeded."""
        return {sample["metric"]["job"]: sample["value"][1] == "1" for sample in self.query("up")}


class PrometheusQueryError(RuntimeError):
    pass


def scrape_config(targets: Mapping[str, str], interval_s: float) -> str:
    """YAML (JSON is YAML) for `targets`: job name → host:port."""
    config = {
        "global": {
            "scrape_interval": f"{interval_s:g}s",
            "evaluation_interval": f"{interval_s:g}s",
        },
        "rule_files": [str(path) for path in sorted(RULES_DIR.glob("*.yml"))],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    return json.dumps(config, indent=2)


@contextlib.contextmanager
def running_prometheus(
    work_dir: Path, targets: Mapping[str, str], *, interval_s: float = 1.0
) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("Prometheus is not installed: apt-get install prometheus")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "prometheus.yml"
    config.write_text(scrape_config(targets, interval_s))
    (port,) = kafkactl().free_ports(1)
    log = (work_dir / "prometheus.log").open("ab")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: _ready(prometheus, process), 30, "Prometheus to be ready")
        yield prometheus
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ready(prometheus: Prometheus, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"Prometheus exited with {process.returncode}")
    try:
        return httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
