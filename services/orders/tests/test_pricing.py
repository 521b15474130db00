from __future__ import annotations

import pytest

from orders.domain.pricing import CatalogEntry, PricingError, RequestedLine, ShippingPolicy, quote

CATALOG = {
    "A": CatalogEntry("A", "Mug", 1299, "EUR", True),
    "B": CatalogEntry("B", "Tee", 2500, "EUR", True),
    "OLD": CatalogEntry("OLD", "Retired", 100, "EUR", False),
    "USD": CatalogEntry("USD", "Import", 100, "USD", True),
}
POLICY = ShippingPolicy(flat_fee=499, free_from_subtotal=10_000)


def test_totals_come_from_catalog_prices_plus_shipping() -> None:
    priced = quote([RequestedLine("A", 2), RequestedLine("B", 1)], CATALOG, POLICY)
    assert (priced.subtotal, priced.shipping, priced.total) == (5098, 499, 5597)
    assert priced.currency == "EUR"


def test_shipping_is_free_from_the_threshold() -> None:
    assert quote([RequestedLine("B", 4)], CATALOG, POLICY).shipping == 0


def test_unknown_and_inactive_skus_are_named_by_line() -> None:
    with pytest.raises(PricingError) as error:
        quote(
            [RequestedLine("A", 1), RequestedLine("NOPE", 1), RequestedLine("OLD", 1)],
            CATALOG,
            POLICY,
        )
    assert [(p.index, p.sku) for p in error.value.problems] == [(1, "NOPE"), (2, "OLD")]


def test_lines_in_several_currencies_are_refused() -> None:
    with pytest.raises(PricingError, match="several currencies"):
        quote([RequestedLine("A", 1), RequestedLine("USD", 1)], CATALOG, POLICY)
