"""`python -m inventory`: stock reservations, the catalog, the outbox relay."""

from inventory.bootstrap import definition
from inventory.settings import InventorySettings
from kit.service import serve

if __name__ == "__main__":
    settings = InventorySettings()
    serve(settings, definition(settings))
