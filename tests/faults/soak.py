"""The long fault runs, outside the test suite: a 10 s Redis outage in each fail mode and a
10,000-request churn. Prints the figures the README's Reliability section reports, and
exits non-zero if
any invariant broke.

    python -m tests.faults.soak                      # everything (about 2 minutes)
    python -m tests.faults.soak --only churn --requests 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.faults.scenarios import ChurnReport, OutageReport, run_churn, run_outage


def outage_figures(report: OutageReport) -> dict[str, Any]:
    during = report.during
    by_id = {o.request_id: o for o in report.outcomes}
    return {
        "mode": report.mode,
        "down_s": report.down_s,
        "requests": len(report.outcomes),
        "during_outage": len(during),
        "statuses_during": dict(Counter(f"{o.status} {o.code or ''}".strip() for o in during)),
        "served": len(report.served),
        "recovery_s": None if report.recovery_s is None else round(report.recovery_s, 3),
        "journal_replayed_after_s": None
        if report.journal_replayed_after_s is None
        else round(report.journal_replayed_after_s, 3),
        "journal_size": report.journal_size,
        "books_converged_s": round(report.books_converged_s, 3),
        "served_missing_from_ledger": len(report.served - report.books.ledger_ids),
        "ledger_not_served": len(report.books.ledger_ids - report.served),
        "ledger_micros": report.books.ledger_cost,
        "budget_spent_micros": report.books.spent,
        "leaked_reservations": {
            rid: {"micros": amount, "answered": by_id[rid].status if rid in by_id else None}
            for rid, amount in report.leaked.items()
        },
        "unshaped_errors": sum(1 for o in report.outcomes if o.status != 200 and not o.shaped),
        "router_alive": report.router_alive,
        "tracebacks": len(report.problems),
    }


def outage_ok(figures: dict[str, Any]) -> bool:
    return (
        figures["router_alive"]
        and not figures["tracebacks"]
        and not figures["unshaped_errors"]
        and not figures["served_missing_from_ledger"]
        and not figures["ledger_not_served"]
        and figures["ledger_micros"] == figures["budget_spent_micros"]
        and figures["recovery_s"] is not None
        and figures["recovery_s"] < 1.0
    )


def churn_figures(report: ChurnReport) -> dict[str, Any]:
    books = report.books
    return {
        "requests": report.sent,
        "elapsed_s": round(report.elapsed_s, 2),
        "requests_per_s": round(report.sent / report.elapsed_s),
        "kinds": dict(report.kinds),
        "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
        "unshaped_errors": len(report.unshaped),
        "ledger_rows": books.ledger_rows,
        "duplicate_ledger_rows": report.duplicate_ledger_rows,
        "served_missing_from_ledger": len(report.served - books.ledger_ids),
        "ledger_micros": books.ledger_cost,
        "budget_spent_micros": books.spent,
        "reserved_micros": books.reserved,
        "reservations_left": books.reservations,
        "key_leases_left": books.key_leases,
        "supply_leases_left": books.supply_leases,
        "in_flight": report.in_flight,
        "drained_s": round(report.drained_s, 3),
        "tracebacks": len(report.problems),
    }


def churn_ok(figures: dict[str, Any]) -> bool:
    return (
        not figures["tracebacks"]
        and not figures["unshaped_errors"]
        and "500" not in figures["statuses"]
        and not figures["duplicate_ledger_rows"]
        and not figures["served_missing_from_ledger"]
        and figures["ledger_micros"] == figures["budget_spent_micros"]
        and not any(
            (
                figures["reserved_micros"],
                figures["reservations_left"],
                figures["key_leases_left"],
                figures["supply_leases_left"],
                *figures["in_flight"].values(),
            )
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("outage", "churn"))
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="router-soak-"))
    for name in ("closed", "open", "churn"):
        (workdir / name).mkdir()
    results: dict[str, Any] = {}
    healthy = True
    if args.only in (None, "outage"):
        for mode in ("closed", "open"):
            started = time.monotonic()
            report = run_outage(
                workdir / mode,
                mode=mode,
                down_s=args.outage_s,
                clients=args.clients,
                answers_after=200,
                after_s=3.0,
            )
            figures = outage_figures(report)
            figures["wall_s"] = round(time.monotonic() - started, 1)
            results[f"outage_{mode}"] = figures
            healthy &= outage_ok(figures)
    if args.only in (None, "churn"):
        started = time.monotonic()
        figures = churn_figures(
            run_churn(workdir / "churn", count=args.requests, concurrency=args.concurrency)
        )
        figures["wall_s"] = round(time.monotonic() - started, 1)
        results["churn"] = figures
        healthy &= churn_ok(figures)
    json.dump(results, sys.stdout, indent=2)
    print(f"\n{'OK' if healthy else 'INVARIANT BROKEN'}: logs in {workdir}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
