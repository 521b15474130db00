"""Which parcels match their return label (pure rules, no database)."""

from __future__ import annotations

from fulfillment.domain.returns import ReturnLine, merged, received_line_problems

MUG, TEE = "T-MUG", "T-TEE"
LABEL = [ReturnLine(MUG, 2), ReturnLine(TEE, 1)]


def test_exactly_the_authorized_lines_are_accepted() -> None:
    assert received_line_problems(LABEL, LABEL) == []


def test_fewer_units_or_an_empty_parcel_are_accepted() -> None:
    assert received_line_problems(LABEL, [ReturnLine(MUG, 1)]) == []
    assert received_line_problems(LABEL, []) == []


def test_a_sku_not_on_the_label_is_refused() -> None:
    (problem,) = received_line_problems(LABEL, [ReturnLine("T-CAP", 1)])
    assert problem.sku == "T-CAP"
    assert "not on the return label" in problem.message


def test_more_units_than_authorized_are_refused_even_when_split_over_lines() -> None:
    (problem,) = received_line_problems(LABEL, [ReturnLine(MUG, 1), ReturnLine(MUG, 2)])
    assert problem.sku == MUG
    assert "3 x T-MUG received but only 2 authorized" in problem.message


def test_lines_of_one_sku_are_merged_in_first_seen_order() -> None:
    lines = [ReturnLine(TEE, 1), ReturnLine(MUG, 1), ReturnLine(TEE, 2)]
    assert merged(lines) == [ReturnLine(TEE, 3), ReturnLine(MUG, 1)]
