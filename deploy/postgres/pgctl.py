#!/usr/bin/env python3
"""A throwaway PostgreSQL server for tests and local runs, from Debian's packages.

    python deploy/postgres/pgctl.py start --data-dir DIR [--port 5433]   # prints the URL
    python deploy/postgres/pgctl.py create-db --port 5433 NAME
    python deploy/postgres/pgctl.py stop --data-dir DIR

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user the
Debian package creates. Authentication is `trust` on loopback only: this is for tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

INSTALL_HINT = "install it with: apt-get install -y postgresql"


class PostgresError(RuntimeError):
    pass


def bin_dir() -> Path:
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresError(f"PostgreSQL server binaries (initdb) not found; {INSTALL_HINT}")


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise PostgresError("running as root needs `runuser` to drop to the postgres user")
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str]) -> None:
    result = subprocess.run(_as_server_user(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PostgresError(f"{' '.join(command[:2])} failed:\n{result.stdout}{result.stderr}")


def start(data_dir: Path, port: int) -> str:
    data_dir = data_dir.resolve()
    binaries = bin_dir()
    cluster = data_dir / "cluster"
    if os.geteuid() == 0:
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(data_dir, "postgres", "postgres")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
    if not (cluster / "PG_VERSION").exists():
        _run(
            [
                str(binaries / "initdb"),
                "-D",
                str(cluster),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
    # fsync off: a test database is thrown away, and fsync dominates its runtime.
    options = (
        f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _run(
        [
            str(binaries / "pg_ctl"),
            "-D",
            str(cluster),
            "-l",
            str(data_dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    return url(port)


def stop(data_dir: Path) -> None:
    cluster = data_dir.resolve() / "cluster"
    if (cluster / "postmaster.pid").exists():
        _run([str(bin_dir() / "pg_ctl"), "-D", str(cluster), "-m", "fast", "-w", "stop"])


def create_database(port: int, name: str) -> str:
    exists = _psql(port, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if exists.stdout.strip() != "1":
        created = _psql(port, "-c", f'CREATE DATABASE "{name}"')
        if created.returncode != 0:
            raise PostgresError(f"CREATE DATABASE {name} failed: {created.stderr}")
    return url(port, name)


def _psql(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def url(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start")
    start_cmd.add_argument("--data-dir", type=Path, required=True)
    start_cmd.add_argument("--port", type=int, default=5433)
    stop_cmd = commands.add_parser("stop")
    stop_cmd.add_argument("--data-dir", type=Path, required=True)
    create = commands.add_parser("create-db")
    create.add_argument("--port", type=int, default=5433)
    create.add_argument("name")
    args = parser.parse_args()
    try:
        if args.command == "start":
            print(start(args.data_dir, args.port))
        elif args.command == "stop":
            stop(args.data_dir)
        else:
            print(create_database(args.port, args.name))
    except PostgresError as error:
        print(f"pgctl: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
