from __future__ import annotations

from kit.settings import ServiceSettings


class PaymentsSettings(ServiceSettings):
    service_name: str = "payments"
    http_port: int = 8002
