"""Amounts travel as integer minor units; customers read them as money."""

from __future__ import annotations

import pytest

from notifications.adapters.rendering import money


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1299, "EUR", "12.99 EUR"),
        (5, "EUR", "0.05 EUR"),
        (100000, "USD", "1000.00 USD"),
        (500, "JPY", "500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (-250, "EUR", "-2.50 EUR"),
    ],
)
def test_minor_units_are_shown_with_the_currencys_decimals(
    amount: int, currency: str, shown: str
) -> None:
    assert money(amount, currency) == shown
