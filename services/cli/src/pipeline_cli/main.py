"""`pipeline`: one entry point, one sub-command group per job an engineer has to do."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="pipeline",
    help="Inspect, trace, replay and repair the order pipeline's event streams.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


if __name__ == "__main__":
    app()
