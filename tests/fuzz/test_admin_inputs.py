"""Admin inputs the fuzzer once turned into 500s, now 400s; they run on this module's own
router because a bad price, had it been stored, would break GET /admin/prices for good."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.support import error_shape_ok
from tests.router_process import ADMIN_KEY, RouterProcess

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.mark.parametrize("value", ["inf", "1e400", "1e300"])
def test_reconcile_with_an_absurd_age_is_a_400(router: RouterProcess, value: str) -> None:
    resp = httpx.post(
        f"{router.url}/admin/reconcile", params={"older_than_s": value}, headers=ADMIN, timeout=10
    )
    assert resp.status_code == 400 and error_shape_ok(resp.json()), resp.text


@pytest.mark.parametrize(
    "effective_from", [1e12, -1e12, 1e308, "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"]
)
def test_a_price_effective_outside_years_1970_to_9999_is_a_400_and_stores_nothing(
    router: RouterProcess, effective_from: float | str
) -> None:
    resp = httpx.post(
        f"{router.url}/admin/prices",
        headers=ADMIN,
        timeout=10,
        json={
            "model": "far-away",
            "input_per_mtok": "1",
            "output_per_mtok": "1",
            "effective_from": effective_from,
        },
    )
    assert resp.status_code == 400 and error_shape_ok(resp.json()), resp.text
    listed = httpx.get(f"{router.url}/admin/prices", headers=ADMIN, timeout=10)
    assert listed.status_code == 200 and "far-away" not in listed.text
