"""Per-key RPM, TPM and concurrency leases, on every store."""

from __future__ import annotations

from router.store.base import Denial, Limits
from tests.contract.builders import KEY, TEAM, admit_request, key_budget, settlement
from tests.contract.conftest import StoreEnv, wait_for


async def test_rpm_denies_with_a_retry_after(env: StoreEnv) -> None:
    limits = Limits(rpm=3)
    for i in range(3):
        assert (await env.store.admit(admit_request(f"r{i}", limits=limits))).admitted
    denied = await env.store.admit(admit_request("r3", limits=limits))
    assert not denied.admitted
    assert denied.denied_by is Denial.RPM
    assert denied.retry_after_s is not None and 0 < denied.retry_after_s <= 120
    if env.is_memory:
        env.advance(denied.retry_after_s)
        assert (await env.store.admit(admit_request("r4", limits=limits))).admitted


async def test_rpm_window_slides(env: StoreEnv) -> None:
    """Requests of the previous minute still weigh on the next one, then fade out."""
    if not env.is_memory:
        return  # needs a movable clock
    limits = Limits(rpm=10)
    env.advance(50)  # 50 s into a minute
    for i in range(10):
        assert (await env.store.admit(admit_request(f"a{i}", limits=limits))).admitted
    env.advance(15)  # 5 s into the next minute: the previous 10 weigh ~9.2
    denied = await env.store.admit(admit_request("b0", limits=limits))
    assert denied.denied_by is Denial.RPM
    assert denied.retry_after_s == 1.0  # at 6 s into the minute the weight is exactly 9
    env.advance(1)
    assert (await env.store.admit(admit_request("b1", limits=limits))).admitted
    env.advance(60)
    for i in range(9):
        assert (await env.store.admit(admit_request(f"c{i}", limits=limits))).admitted


async def test_tpm_counts_estimated_tokens(env: StoreEnv) -> None:
    limits = Limits(tpm=100)
    assert (await env.store.admit(admit_request("r1", limits=limits, tokens=60))).admitted
    denied = await env.store.admit(admit_request("r2", limits=limits, tokens=60))
    assert denied.denied_by is Denial.TPM
    assert denied.retry_after_s is not None and denied.retry_after_s > 0
    assert (await env.store.admit(admit_request("r3", limits=limits, tokens=40))).admitted


async def test_settle_corrects_tpm_to_actual_tokens(env: StoreEnv) -> None:
    limits = Limits(tpm=100)
    assert (await env.store.admit(admit_request("r1", limits=limits, tokens=90))).admitted
    await env.store.settle(settlement("r1", (), 1, prompt_tokens=10, completion_tokens=10))
    assert (await env.store.admit(admit_request("r2", limits=limits, tokens=80))).admitted


async def test_concurrency_leases_are_released_by_settle_and_release(env: StoreEnv) -> None:
    limits = Limits(max_concurrency=2)
    assert (await env.store.admit(admit_request("r1", limits=limits))).admitted
    assert (await env.store.admit(admit_request("r2", limits=limits))).admitted
    denied = await env.store.admit(admit_request("r3", limits=limits))
    assert denied.denied_by is Denial.CONCURRENCY
    assert denied.retry_after_s is not None and 0 < denied.retry_after_s <= 1
    await env.store.settle(settlement("r1", (), 5))
    assert (await env.store.admit(admit_request("r3", limits=limits))).admitted
    await env.store.release("r2", KEY, TEAM, ())
    assert (await env.store.admit(admit_request("r4", limits=limits))).admitted
    assert not (await env.store.admit(admit_request("r5", limits=limits))).admitted


async def test_an_expired_lease_frees_its_slot_but_keeps_its_reservation(env: StoreEnv) -> None:
    """A crashed request never leaks a concurrency slot; its money waits for reconcile."""
    limits = Limits(max_concurrency=1)
    budgets = (key_budget(1000),)
    ttl_ms = 10_000 if env.is_memory else 50
    assert (
        await env.store.admit(
            admit_request("crashed", budgets, 300, limits=limits, lease_ttl_ms=ttl_ms)
        )
    ).admitted
    assert not (await env.store.admit(admit_request("next", budgets, 300, limits=limits))).admitted
    if env.is_memory:
        env.advance(10)
        assert (await env.store.admit(admit_request("next", budgets, 300, limits=limits))).admitted
    else:

        async def admitted() -> bool:
            return (
                await env.store.admit(admit_request("next", budgets, 300, limits=limits))
            ).admitted

        await wait_for(admitted, timeout=2.0)
    status = await env.store.budget_status(TEAM, budgets)
    assert status[0].reserved == 600


async def test_limits_are_per_key(env: StoreEnv) -> None:
    limits = Limits(rpm=1, max_concurrency=1)
    assert (await env.store.admit(admit_request("r1", key_id="a", limits=limits))).admitted
    assert (await env.store.admit(admit_request("r2", key_id="b", limits=limits))).admitted
    assert not (await env.store.admit(admit_request("r3", key_id="a", limits=limits))).admitted
