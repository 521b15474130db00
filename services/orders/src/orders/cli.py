"""`python -m orders.cli keys create|list|revoke`: API keys of storefront clients.

Uses the service's own settings (DATABASE_URL, else the embedded SQLite file), and
creates the tables if they are missing, so keys can be made before the first start.
A running gateway notices a revocation within its key cache TTL (a few seconds).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session, sessionmaker

from kit.database import create_database_engine
from orders.adapters.api_key_store import ApiKeyInfo, create_key, list_keys, revoke_key
from orders.adapters.tables import OrdersBase
from orders.domain.api_keys import ALL_SCOPES, Scope
from orders.settings import OrdersSettings

app = typer.Typer(
    help="Administration of the orders service.", no_args_is_help=True, add_completion=False
)
keys = typer.Typer(help="API keys of storefront clients.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("create")
def create(
    client: Annotated[str, typer.Option(help="The storefront client the key belongs to")],
    name: Annotated[str, typer.Option(help="A label, e.g. 'web shop production'")],
    scope: Annotated[
        list[Scope] | None, typer.Option(help="Repeat for several; default: all of them")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts")] = False,
) -> None:
    """Creates a key and prints it. It is shown this once: only its hash is stored."""
    try:
        with _transaction() as session:
            created = create_key(session, client, name, scope or ALL_SCOPES, _now())
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    info = created.info
    if as_json:
        typer.echo(json.dumps({"key": created.token, **_as_dict(info)}))
        return
    typer.echo(f"API key {info.key_id} for client {info.client_id} ({info.name})")
    typer.echo(f"scopes: {' '.join(info.scopes)}")
    typer.echo("Store the key now, it cannot be shown again:")
    typer.echo(created.token)


@keys.command("list")
def list_(
    client: Annotated[str | None, typer.Option(help="Only this client's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array, for scripts")] = False,
) -> None:
    """Lists keys (never their secrets), revoked ones included."""
    with _transaction() as session:
        found = list_keys(session, client)
    if as_json:
        typer.echo(json.dumps([_as_dict(info) for info in found]))
        return
    _print_table(
        ("KEY ID", "CLIENT", "NAME", "SCOPES", "CREATED", "REVOKED"),
        [
            (
                info.key_id,
                info.client_id,
                info.name,
                ",".join(info.scopes),
                _when(info.created_at),
                _when(info.revoked_at) if info.revoked_at else "-",
            )
            for info in found
        ],
    )


@keys.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id, as `list` shows it")]) -> None:
    """Revokes a key for good. Revoking a revoked key changes nothing; an unknown one fails."""
    with _transaction() as session:
        revocation = revoke_key(session, key_id, _now())
    if revocation is None:
        typer.echo(f"no API key {key_id}", err=True)
        raise typer.Exit(1)
    info = revocation.info
    assert info.revoked_at is not None
    if revocation.already_revoked:
        typer.echo(f"API key {key_id} was already revoked at {_when(info.revoked_at)}")
    else:
        typer.echo(f"revoked API key {key_id} of client {info.client_id}")


@contextmanager
def _transaction() -> Iterator[Session]:
    settings = OrdersSettings()
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the embedded SQLite file's
    engine = create_database_engine(settings.resolved_database_url())
    try:
        OrdersBase.metadata.create_all(engine)
        with sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        engine.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _as_dict(info: ApiKeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "client_id": info.client_id,
        "name": info.name,
        "scopes": list(info.scopes),
        "created_at": info.created_at.isoformat(),
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
    }


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


if __name__ == "__main__":
    app()
