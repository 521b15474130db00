from __future__ import annotations

from kit.settings import ServiceSettings


class FulfillmentSettings(ServiceSettings):
    service_name: str = "fulfillment"
    http_port: int = 8003
    # The simulated carrier's pace; 0 means the step happens in the same transaction.
    dispatch_delay_s: float = 0.0
    delivery_delay_s: float = 0.0
    carrier_poll_interval_s: float = 0.2
