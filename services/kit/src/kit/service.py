"""Wiring shared by every service: one place builds the engine, codec, relay and consumer.

A service describes itself with a `ServiceDefinition`; `create_app` turns it into a FastAPI
app whose lifespan runs the outbox relay, the batch consumer and any periodic jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData, Table
from sqlalchemy.orm import Session, sessionmaker

from kit import tracing
from kit.avro_codec import SchemaStore
from kit.consumer import BatchProcessor, KafkaBatchConsumer, Subscription, parking_probe
from kit.database import create_database_engine, writer_lock
from kit.dlq_watch import watch_dead_letter_topics
from kit.envelope import Envelope
from kit.group_commit import GroupCommitter
from kit.http_metrics import HttpMetricsMiddleware
from kit.logs import configure_logging, uvicorn_log_config
from kit.outbox_relay import OutboxRelay, RelayWakeup, create_producer
from kit.problems import install_problem_handlers
from kit.settings import ServiceSettings
from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """Work driven by time rather than by a message (carrier updates, deadlines)."""

    name: str
    interval_s: float
    run: Callable[[UnitOfWork], object]


@dataclass(frozen=True)
class PeriodicProbe:
    """A periodic read for gauges (orders by state, stock levels): it gets a read-only
    session, so it never holds the writer lock while it counts."""

    name: str
    interval_s: float
    run: Callable[[Session], object]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    metadata: MetaData
    routes: Mapping[str, str]
    subscription: Subscription | None = None
    routers: Sequence[APIRouter] = ()
    periodic_jobs: Sequence[PeriodicJob] = ()
    probes: Sequence[PeriodicProbe] = ()
    # Business metrics counted from what the service emitted, once its transaction commits.
    count_emitted: Callable[[Envelope], None] | None = None
    # One service (orders) reports every dead-letter topic's depth for the whole pipeline.
    watches_dead_letters: bool = False
    on_startup: Callable[[Runtime], None] | None = None
    # Middleware and other app-level additions (e.g. a request body size limit).
    configure_app: Callable[[FastAPI], None] | None = None
    title: str = ""


class Runtime:
    """Everything a running service shares: settings, database, schemas, relay wake-up."""

    def __init__(self, settings: ServiceSettings, definition: ServiceDefinition) -> None:
        self.settings = settings
        self.definition = definition
        url = settings.resolved_database_url()
        self.engine = create_database_engine(url)
        self.read_engine = create_database_engine(url, for_reads=True)
        self.write_lock = writer_lock(url)
        self.session_factory: sessionmaker[Session] = sessionmaker(
            self.engine, expire_on_commit=False
        )
        # Read-only sessions (queries behind GET endpoints) never wait for writers.
        self.read_session_factory: sessionmaker[Session] = sessionmaker(self.read_engine)
        # API writes go through here: one transaction for whatever requests queued up.
        self.committer = GroupCommitter(self.unit_of_work)
        self.schemas = SchemaStore.load(settings.schemas_dir)
        self.wakeup = RelayWakeup()
        self.outbox: Table = definition.metadata.tables["outbox"]
        self.inbox: Table = definition.metadata.tables["inbox"]

    def create_tables(self) -> None:
        self.definition.metadata.create_all(self.engine)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(
            self.session_factory,
            self.schemas,
            self.definition.routes,
            self.outbox,
            self.inbox,
            self.definition.name,
            on_outbox_commit=self.wakeup.notify,
            write_lock=self.write_lock,
            on_emit_committed=self.definition.count_emitted,
        )

    def batch_processor(self) -> BatchProcessor:
        if self.definition.subscription is None:
            raise RuntimeError(f"{self.definition.name} consumes nothing")
        return BatchProcessor(
            self.definition.subscription,
            self.schemas,
            self.unit_of_work,
            group_id=self.definition.name,
            max_attempts=self.settings.handler_max_attempts,
            drill_failures=self.settings.drill_failures(),
        )


def create_app(runtime: Runtime) -> FastAPI:
    definition, settings = runtime.definition, runtime.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.wakeup.bind(asyncio.get_running_loop())
        await asyncio.to_thread(runtime.create_tables)
        if definition.on_startup:
            await asyncio.to_thread(definition.on_startup, runtime)
        producer = create_producer(
            settings.kafka_bootstrap_servers, settings.producer_linger_ms, definition.name
        )
        relay = OutboxRelay(
            engine=runtime.engine,
            read_engine=runtime.read_engine,
            write_lock=runtime.write_lock,
            outbox=runtime.outbox,
            producer=producer,
            wakeup=runtime.wakeup,
            max_batch=settings.relay_max_batch,
            poll_interval_s=settings.relay_poll_interval_s,
        )
        tasks = [
            _supervised(relay.run(), "outbox relay"),
            _supervised(runtime.committer.run(), "group commit"),
        ]
        if definition.subscription is not None:
            consumer = KafkaBatchConsumer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                group_id=definition.name,
                subscription=definition.subscription,
                processor=runtime.batch_processor(),
                max_batch=settings.consumer_max_batch,
                poll_timeout_ms=settings.consumer_poll_timeout_ms,
            )
            tasks.append(_supervised(consumer.run(), "consumer"))
        tasks += [
            _supervised(_every(job, runtime), f"job {job.name}") for job in definition.periodic_jobs
        ]
        # Every service reports its own parked messages and blocking dead letters.
        parking = PeriodicProbe("dead letters", 5.0, parking_probe(definition.metadata))
        tasks += [
            _supervised(_probe_every(probe, runtime), f"probe {probe.name}")
            for probe in (*definition.probes, parking)
        ]
        if definition.watches_dead_letters:
            watch = watch_dead_letter_topics(settings.kafka_bootstrap_servers, interval_s=5.0)
            tasks.append(_supervised(watch, "dead-letter watch"))
        log.info("%s started", definition.name)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Drain what the last handled batches emitted before the producer goes away.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(relay.publish_pending(), timeout=5)
            await producer.stop()
            runtime.engine.dispose()
            runtime.read_engine.dispose()
            log.info("%s stopped", definition.name)

    app = FastAPI(
        title=definition.title or definition.name,
        lifespan=lifespan,
        telemetry=tracing.fastapi_telemetry(),  # each request's SERVER span, when tracing is on
    )
    install_problem_handlers(app)
    if definition.configure_app is not None:
        definition.configure_app(app)
    app.add_middleware(tracing.TraceRequests)  # the request's trace id in its log lines
    app.add_middleware(HttpMetricsMiddleware)  # added last: outermost, so it counts every answer

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        # On the event loop, not the thread pool: a scrape never queues behind busy workers.
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        return {"status": "ok", "service": definition.name}

    for router in definition.routers:
        app.include_router(router)
    app.state.runtime = runtime
    return app


def _supervised(coroutine: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
    """A background task that dies takes the process down, so a supervisor can restart it."""

    def _done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s crashed; stopping the service", what, exc_info=task.exception())
            os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(coroutine, name=what)
    task.add_done_callback(_done)
    return task


async def _every(job: PeriodicJob, runtime: Runtime) -> None:
    def tick() -> None:
        with runtime.unit_of_work() as uow:
            job.run(uow)
            uow.commit()

    while True:
        try:
            await asyncio.to_thread(tick)
        except Exception:
            log.exception("periodic job %s failed; retrying next interval", job.name)
        await asyncio.sleep(job.interval_s)


async def _probe_every(probe: PeriodicProbe, runtime: Runtime) -> None:
    def read() -> None:
        with runtime.read_session_factory() as session:
            probe.run(session)

    while True:
        try:
            await asyncio.to_thread(read)
        except Exception:
            log.exception("probe %s failed; retrying next interval", probe.name)
        await asyncio.sleep(probe.interval_s)


def serve(settings: ServiceSettings, definition: ServiceDefinition) -> None:
    """The entry point of every service process."""
    configure_logging(definition.name, settings.log_level)
    tracing.configure_tracing(definition.name)  # exports only if OTEL_EXPORTER_OTLP_* is set
    app = create_app(Runtime(settings, definition))
    # Everything loaded so far (modules, schemas, metadata) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it for every batch.
    gc.freeze()
    try:
        uvicorn.run(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=uvicorn_log_config(),
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        tracing.shutdown_tracing()  # the spans of the last batches still go out
