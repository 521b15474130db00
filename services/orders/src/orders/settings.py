from __future__ import annotations

from kit.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    service_name: str = "orders"
    http_port: int = 8000
    shipping_flat_fee: int = 499
    free_shipping_from: int = 10_000
