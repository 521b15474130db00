"""`python -m payments`: captures through the payment-provider adapter."""

from kit.service import serve
from payments.bootstrap import definition
from payments.settings import PaymentsSettings

if __name__ == "__main__":
    serve(PaymentsSettings(), definition())
