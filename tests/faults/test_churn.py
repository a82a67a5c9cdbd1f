"""2,000 requests, 32 at a time, of every kind a client sends or abandons (finished, streamed,
hung up on after the first bytes, timed out by the client, cancelled), while the upstreams
fail at random (5xx, 429, 503, garbage, cut streams, missing usage, stalls). Afterwards
nothing is reserved, leased or in flight, and the ledger equals the budget counters. The
10,000-request run is `python -m tests.faults.soak`.
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import KINDS, ChurnReport, run_churn

COUNT = 2_000


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> ChurnReport:
    return run_churn(tmp_path_factory.mktemp("churn"), count=COUNT)


def test_every_kind_of_client_behaviour_was_exercised(churn: ChurnReport) -> None:
    assert set(churn.kinds) == set(KINDS)
    assert all(n >= COUNT // len(KINDS) // 2 for n in churn.kinds.values())
    assert churn.statuses[200] > COUNT // 4
    assert churn.statuses[502] + churn.statuses[503] > 0, "the upstream faults were felt"


def test_no_answer_was_a_500_or_out_of_shape(churn: ChurnReport) -> None:
    assert churn.problems == []
    assert churn.unshaped == []
    assert set(churn.statuses) <= {200, 502, 503, 504}


def test_nothing_is_left_reserved_leased_or_in_flight(churn: ChurnReport) -> None:
    books = churn.books
    assert (books.reservations, books.reserved) == (0, 0)
    assert (books.key_leases, books.supply_leases) == (0, 0)
    assert set(churn.in_flight.values()) == {0}


def test_the_ledger_adds_up(churn: ChurnReport) -> None:
    books = churn.books
    assert books.ledger_cost == books.spent > 0
    assert churn.duplicate_ledger_rows == 0
    assert churn.served <= books.ledger_ids
    assert books.ledger_ids <= churn.sent_ids
