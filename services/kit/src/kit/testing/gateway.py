"""HTTP clients for the storefront gateway as a storefront would use it: every request
carries the API key, every POST a fresh Idempotency-Key (unless the caller set one)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from kit.settings import REPO_ROOT


def _add_idempotency_key(request: httpx.Request) -> None:
    if request.method == "POST" and "idempotency-key" not in request.headers:
        request.headers["Idempotency-Key"] = str(uuid.uuid4())


async def _add_idempotency_key_async(request: httpx.Request) -> None:
    _add_idempotency_key(request)


def gateway_client(base_url: str, api_key: str, **options: Any) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        event_hooks={"request": [_add_idempotency_key]},
        **{"timeout": 10, **options},
    )


def async_gateway_client(base_url: str, api_key: str, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        event_hooks={"request": [_add_idempotency_key_async]},
        **{"timeout": 30, **options},
    )


def create_api_key(
    env: Mapping[str, str],
    client_id: str,
    scopes: tuple[str, ...] = ("orders:read", "orders:write"),
    name: str = "tests",
) -> str:
    """A new key through the orders service's own CLI, against the database in `env`."""
    command = [sys.executable, "-m", "orders.cli", "keys", "create", "--client", client_id]
    command += ["--name", name, "--json"]
    command += [arg for scope in scopes for arg in ("--scope", scope)]
    done = subprocess.run(
        command,
        env=dict(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(done.stdout)["key"]
    return key
