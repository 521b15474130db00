"""`python -m orders.kpis`: the KPI stream processor, a faust worker run in this process."""

from __future__ import annotations

import logging

import faust

from kit.avro_codec import SchemaStore
from kit.logs import configure_logging
from orders.kpis.app import OrderKpis
from orders.kpis.settings import KpisSettings

log = logging.getLogger("orders.kpis")


def main() -> None:
    settings = KpisSettings()
    configure_logging("kpis", settings.log_level)
    if logging.getLogger().level > logging.DEBUG:
        # faust logs every service's start and stop at INFO: hundreds of lines per run.
        logging.getLogger("faust").setLevel(logging.WARNING)
        logging.getLogger("mode").setLevel(logging.WARNING)
    # Backpressure, not a fault: while catching up it warns for every changelog batch.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    settings.kpis_data_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    kpis = OrderKpis(settings, SchemaStore.load(settings.schemas_dir))
    worker = faust.Worker(
        kpis.app,
        loglevel=settings.log_level,
        # Our JSON logs on stdout, not faust's banner, colours and stdout redirection.
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    )
    worker.spinner = None  # it writes terminal escapes even when stdout is a file
    log.info(
        "KPIs of %s on http://%s:%d/metrics",
        settings.kpis_source_topic,
        settings.kpis_http_host,
        settings.kpis_http_port,
        extra={"app_id": settings.kpis_app_id},
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
