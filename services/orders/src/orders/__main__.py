"""`python -m orders`: the gateway, the saga consumer and the outbox relay in one process."""

from kit.service import serve
from orders.bootstrap import definition
from orders.settings import OrdersSettings

if __name__ == "__main__":
    settings = OrdersSettings()
    serve(settings, definition(settings))
