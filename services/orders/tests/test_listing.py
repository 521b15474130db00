"""Listing a client's orders on real databases: keyset pages, filters, ownership, cursors."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import update

from kit.problems import ProblemError
from orders import testing
from orders.adapters.tables import Order
from orders.domain.saga import OrderStatus
from orders.entrypoints.listing import (
    OrderFilters,
    OrderPage,
    Position,
    decode_cursor,
    encode_cursor,
    list_orders,
    parse_statuses,
)
from orders.testing import OTHER_SHOP, SHOP, GatewayHarness

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def new_order(order_id: str, placed_at: datetime = T0, **fields: Any) -> Order:
    """An order of the shop's customer c-1, placed at T0 unless said otherwise."""
    return testing.new_order(order_id, placed_at, **fields)


class Store(GatewayHarness):
    """The orders tables, listed as the gateway lists them."""

    def page(
        self,
        filters: OrderFilters = OrderFilters(),  # noqa: B008 - frozen, never mutated
        limit: int = 20,
        cursor: str | None = None,
        client_id: str = SHOP,
    ) -> OrderPage:
        with self.reads() as session:
            return list_orders(session, client_id, filters, limit, cursor)

    def all_pages(
        self,
        filters: OrderFilters = OrderFilters(),  # noqa: B008
        limit: int = 20,
        client_id: str = SHOP,
    ) -> list[OrderPage]:
        pages = [self.page(filters, limit, client_id=client_id)]
        while pages[-1].next_cursor is not None:
            assert len(pages) <= 200, "pagination does not end"
            pages.append(self.page(filters, limit, pages[-1].next_cursor, client_id))
        return pages


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as store:
        yield store


def ids(pages: list[OrderPage]) -> list[str]:
    return [item.order_id for page in pages for item in page.items]


def newest_first(orders: list[Order]) -> list[str]:
    return [o.order_id for o in sorted(orders, key=lambda o: (o.placed_at, o.order_id))][::-1]


def tied_orders(count: int, per_timestamp: int, **fields: str) -> list[Order]:
    """`count` orders, `per_timestamp` of them sharing each placed_at, ids unrelated to time."""
    numbers = list(range(count))
    random.Random(4).shuffle(numbers)
    return [
        new_order(f"order-{n:03d}", T0 + timedelta(seconds=i // per_timestamp), **fields)
        for i, n in enumerate(numbers)
    ]


# -- pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 4, 5, 22, 23, 100])
def test_pages_list_every_order_once_newest_first_despite_equal_timestamps(
    store: Store, limit: int
) -> None:
    orders = tied_orders(23, per_timestamp=5)
    store.add(*orders)

    pages = store.all_pages(limit=limit)

    assert ids(pages) == newest_first(orders)
    assert [len(page.items) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert pages[-1].next_cursor is None


def test_all_orders_in_one_microsecond_are_paged_by_order_id(store: Store) -> None:
    orders = [new_order(f"order-{n:02d}") for n in range(10)]
    store.add(*orders)

    pages = store.all_pages(limit=3)

    assert ids(pages) == [f"order-{n:02d}" for n in reversed(range(10))]


def test_a_full_last_page_has_no_next_cursor(store: Store) -> None:
    store.add(*tied_orders(8, per_timestamp=3))

    pages = store.all_pages(limit=4)

    assert [len(page.items) for page in pages] == [4, 4]
    assert pages[1].next_cursor is None


def test_no_orders_is_one_empty_page(store: Store) -> None:
    assert store.page() == OrderPage(items=[], next_cursor=None)


def test_orders_placed_while_paging_do_not_shift_the_next_pages(store: Store) -> None:
    orders = tied_orders(9, per_timestamp=2)
    store.add(*orders)
    first = store.page(limit=4)

    store.add(new_order("order-new", T0 + timedelta(hours=1)))
    rest = store.all_pages(limit=4)  # from the top: the new order comes first
    after_first = store.page(limit=4, cursor=first.next_cursor)

    assert rest[0].items[0].order_id == "order-new"
    assert [i.order_id for i in first.items + after_first.items] == newest_first(orders)[:8]


def test_an_order_changed_while_paging_is_neither_skipped_nor_repeated(store: Store) -> None:
    orders = tied_orders(6, per_timestamp=2)
    store.add(*orders)
    first = store.page(limit=3)
    with store.writes.begin() as session:
        session.execute(update(Order).values(status=OrderStatus.PAID, updated_at=T0))
    second = store.page(limit=3, cursor=first.next_cursor)

    assert [i.order_id for i in first.items + second.items] == newest_first(orders)


def test_a_page_summarises_each_order(store: Store) -> None:
    store.add(new_order("order-1", status=OrderStatus.CANCELLED, customer_id="c-9", shipping=499))
    with store.writes.begin() as session:
        session.execute(update(Order).values(cancel_reason="out_of_stock"))

    [item] = store.page().items

    assert item.model_dump() == {
        "order_id": "order-1",
        "status": "CANCELLED",
        "cancel_reason": "out_of_stock",
        "customer_id": "c-9",
        "currency": "EUR",
        "total": 1499,
        "placed_at": T0,
        "completed_at": None,
    }


# -- filters -------------------------------------------------------------------------------


def test_status_filter_lists_orders_in_any_of_the_statuses(store: Store) -> None:
    statuses = [OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.COMPLETED]
    store.add(
        *(
            new_order(f"order-{n:02d}", T0 + timedelta(seconds=n), status=statuses[n % 3])
            for n in range(12)
        )
    )

    pages = store.all_pages(
        OrderFilters(statuses=frozenset({OrderStatus.PAID, OrderStatus.COMPLETED})), limit=3
    )

    assert ids(pages) == [f"order-{n:02d}" for n in reversed(range(12)) if n % 3 != 0]
    assert len(pages) == 3


def test_customer_filter_lists_only_that_customers_orders(store: Store) -> None:
    store.add(
        *tied_orders(7, per_timestamp=2, customer_id="c-1"),
        new_order("order-c2", customer_id="c-2"),
    )

    pages = store.all_pages(OrderFilters(customer_id="c-2"))

    assert ids(pages) == ["order-c2"]


def test_date_range_includes_its_start_and_excludes_its_end(store: Store) -> None:
    store.add(*(new_order(f"order-{n}", T0 + timedelta(minutes=n)) for n in range(5)))

    filters = OrderFilters(
        placed_from=T0 + timedelta(minutes=1), placed_to=T0 + timedelta(minutes=3)
    )

    assert ids(store.all_pages(filters, limit=1)) == ["order-2", "order-1"]


def test_date_range_compares_instants_whatever_the_offset(store: Store) -> None:
    store.add(new_order("order-1", T0))
    berlin = timezone(timedelta(hours=1))

    inside = OrderFilters(placed_from=T0.astimezone(berlin))
    outside = OrderFilters(placed_to=T0.astimezone(berlin))

    assert ids(store.all_pages(inside)) == ["order-1"]
    assert ids(store.all_pages(outside)) == []


def test_filters_combine_on_every_page(store: Store) -> None:
    wanted = [
        new_order(f"order-{n:02d}", T0 + timedelta(seconds=n // 2), status=OrderStatus.PAID)
        for n in range(7)
    ]
    store.add(
        *wanted,
        *(new_order(f"pending-{n}", T0, status=OrderStatus.PENDING) for n in range(3)),
        *(new_order(f"c2-{n}", T0, status=OrderStatus.PAID, customer_id="c-2") for n in range(3)),
    )

    filters = OrderFilters(statuses=frozenset({OrderStatus.PAID}), customer_id="c-1")

    assert ids(store.all_pages(filters, limit=2)) == newest_first(wanted)


# -- ownership -----------------------------------------------------------------------------


def test_another_clients_orders_are_never_listed(store: Store) -> None:
    mine = tied_orders(5, per_timestamp=2)
    store.add(*mine, *(new_order(f"theirs-{n}", T0, client_id=OTHER_SHOP) for n in range(5)))

    assert ids(store.all_pages(limit=2)) == newest_first(mine)
    assert ids(store.all_pages(limit=2, client_id=OTHER_SHOP)) == [
        f"theirs-{n}" for n in reversed(range(5))
    ]


def test_another_clients_cursor_only_moves_within_the_callers_orders(store: Store) -> None:
    mine = tied_orders(4, per_timestamp=1)
    store.add(*mine, *(new_order(f"zz-theirs-{n}", T0, client_id=OTHER_SHOP) for n in range(4)))
    their_cursor = store.page(limit=1, client_id=OTHER_SHOP).next_cursor

    page = store.page(cursor=their_cursor)

    # Their first order was placed at T0: after it come only my orders placed at T0 whose
    # id sorts lower, and never any of theirs.
    assert all(not item.order_id.startswith("zz-") for item in page.items)
    assert ids([page]) == [o.order_id for o in mine if o.placed_at == T0]


# -- cursors and query parameters ----------------------------------------------------------


def test_a_cursor_round_trips_its_position() -> None:
    position = Position(T0, "0b6f1b4e-2c3d-4e5f-8a9b-0c1d2e3f4a5b")

    cursor = encode_cursor(position)

    assert decode_cursor(cursor) == position
    assert cursor.isascii() and "=" not in cursor and "+" not in cursor and "/" not in cursor


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


VALID = encode_cursor(Position(T0, "order-1"))


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("not a cursor", id="not-base64url"),
        pytest.param(VALID[:-3], id="truncated"),
        pytest.param(VALID + "AA", id="appended"),
        pytest.param(_flip(VALID, len(VALID) // 2), id="one-character-changed"),
        pytest.param(_flip(VALID, 0), id="version-changed"),
        pytest.param(VALID * 3, id="too-long"),
        pytest.param("A", id="impossible-length"),
        pytest.param(base64.urlsafe_b64encode(b"2025-03-01|x").decode(), id="unchecked"),
    ],
)
def test_a_garbled_cursor_is_a_400_invalid_cursor(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor)

    assert (raised.value.status, raised.value.kind) == (400, "invalid-cursor")


def test_a_garbled_cursor_is_refused_before_listing(store: Store) -> None:
    store.add(new_order("order-1"))

    with pytest.raises(ProblemError) as raised:
        store.page(cursor=_flip(VALID, 20))

    assert raised.value.kind == "invalid-cursor"


def test_statuses_may_be_repeated_or_comma_separated() -> None:
    assert parse_statuses(["PAID, FULFILLING", "COMPLETED", ""]) == {
        OrderStatus.PAID,
        OrderStatus.FULFILLING,
        OrderStatus.COMPLETED,
    }


@pytest.mark.parametrize("values", [["SHIPPED"], ["PAID,paid"], ["PAID", "LOST"]])
def test_an_unknown_status_is_a_422_naming_the_parameter(values: list[str]) -> None:
    with pytest.raises(ProblemError) as raised:
        parse_statuses(values)

    assert (raised.value.status, raised.value.kind) == (422, "validation-error")
    assert raised.value.extensions["errors"][0]["field"] == "query.status"
