"""`pipeline`: one entry point, one sub-command group per job an engineer has to do."""

from __future__ import annotations

import typer

from pipeline_cli import dlq, events, reconcile, replay, trace

app = typer.Typer(
    name="pipeline",
    help="Inspect, trace, replay and repair the order pipeline's event streams.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(events.app, name="events")
app.add_typer(dlq.app, name="dlq")
app.add_typer(trace.app, name="order")
app.command("reconcile")(reconcile.reconcile)
app.add_typer(replay.app, name="replay")


if __name__ == "__main__":
    app()
