from __future__ import annotations

from pathlib import Path

from kit.settings import ServiceSettings

DEFAULT_SEED = Path(__file__).with_name("catalog_seed.toml")


class InventorySettings(ServiceSettings):
    service_name: str = "inventory"
    http_port: int = 8001
    catalog_seed_path: Path = DEFAULT_SEED
