"""DLQ depth: how many messages every `*.dlq` topic holds, as a gauge.

Depth is end minus start offsets over the topic's partitions, read from the broker without
joining a consumer group. It counts every record the topic holds — the redrive and purge
markers `pipeline dlq` writes included — until `pipeline dlq purge --all` deletes them.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from kit import metrics
from kit.consumer import DEAD_LETTER_SUFFIX
from kit.retry import retry_forever

log = logging.getLogger(__name__)


async def watch_dead_letter_topics(bootstrap_servers: str, interval_s: float) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        # Like the relay and the consumer, wait out a broker that is not up yet: the gauge is
        # not worth stopping the service for.
        await retry_forever(admin.start, "dead-letter watch: admin client start")
        await retry_forever(consumer.start, "dead-letter watch: consumer start")
        while True:
            try:
                for topic, depth in (await dead_letter_depths(admin, consumer)).items():
                    metrics.dlq_messages.labels(topic).set(depth)
            except Exception as error:  # broker away: keep the last values, try again later
                log.warning("could not read dead-letter depths: %s", error)
            await asyncio.sleep(interval_s)
    finally:
        await consumer.stop()
        await admin.close()


async def dead_letter_depths(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer
) -> dict[str, int]:
    topics = sorted(t for t in await admin.list_topics() if t.endswith(DEAD_LETTER_SUFFIX))
    if not topics:
        return {}
    # The admin client names the partitions; assigning them (no group) gives the consumer
    # the metadata it needs to ask for their offsets.
    partitions = [
        TopicPartition(described["topic"], p["partition"])
        for described in await admin.describe_topics(topics)
        for p in described["partitions"]
    ]
    consumer.assign(partitions)
    starts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    depths = dict.fromkeys(topics, 0)
    for tp in partitions:
        depths[tp.topic] += ends[tp] - starts[tp]
    return depths
