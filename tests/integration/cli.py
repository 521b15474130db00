"""The `pipeline` CLI against the test pipeline: in-process (typer's runner) or, for
`dlq`, as a subprocess an engineer types into; and the gauges the DLQ commands move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from kit.settings import REPO_ROOT
from kit.testing.pipeline import Pipeline
from pipeline_cli.main import app


def run_cli(pipeline: Pipeline, *args: str) -> Result:
    """In-process, in a thread of its own: each command runs its own event loop."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        run = thread.submit(CliRunner().invoke, app, list(args), env=pipeline.service_env("orders"))
        return run.result()


def pipeline_cli(pipeline: Pipeline, *args: str) -> Result:
    """`run_cli`, which must succeed."""
    result = run_cli(pipeline, *args)
    assert result.exit_code == 0, f"pipeline {' '.join(args)}: {result.output}"
    return result


def dlq(pipeline: Pipeline, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    """`pipeline dlq ...` against the test broker; `answer` is typed at its question (none:
    a question fails the command instead of hanging the test)."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline_cli.main", "dlq", *args],
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": pipeline.bootstrap},
    )


def listed(pipeline: Pipeline, topic: str, key: str, *flags: str) -> list[dict[str, Any]]:
    """The dead letters of `key` that `dlq list --json` shows for `topic`."""
    result = dlq(pipeline, "list", "--topic", topic, "--json", *flags)
    assert result.returncode in (0, 1), result.stderr  # 1: none at all
    return [d for d in json.loads(result.stdout) if d["key"] == key]


def gauge(pipeline: Pipeline, service: str, name: str, **labels: str) -> float | None:
    """The value `service` serves for metric `name` with `labels`, if it serves one."""
    text = httpx.get(f"{pipeline.url(service)}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None
