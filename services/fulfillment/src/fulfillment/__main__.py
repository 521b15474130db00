"""`python -m fulfillment`: shipments and the simulated carrier."""

from fulfillment.bootstrap import definition
from fulfillment.settings import FulfillmentSettings
from kit.service import serve

if __name__ == "__main__":
    settings = FulfillmentSettings()
    serve(settings, definition(settings))
