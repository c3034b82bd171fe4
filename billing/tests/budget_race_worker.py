"""A separate proxy process for the budget race test: reserve from many threads at once.

Run as ``python -m billing.tests.budget_race_worker ORG USER KEY ESTIMATE THREADS TRIES START``;
prints ``{"ok": n, "rejected": m}``. It reaches the same Redis and database as the test.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")
    import django

    django.setup()
    from billing.budgets import BudgetExceeded, budget_reserve, budget_settle

    organization_id, user_id, key_id, estimate, threads, tries = map(int, argv[:6])
    start_at = float(argv[6])
    counts = {"ok": 0, "rejected": 0}
    lock = threading.Lock()

    def worker():
        from django.db import connection

        for _ in range(tries):
            try:
                reservation = budget_reserve(
                    organization_id=organization_id,
                    user_id=user_id,
                    api_key_id=key_id,
                    estimate_micros=estimate,
                )
            except BudgetExceeded:
                with lock:
                    counts["rejected"] += 1
                continue
            budget_settle(reservation, actual_micros=estimate)
            with lock:
                counts["ok"] += 1
        connection.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    # Both processes start reserving at the same moment.
    time.sleep(max(0.0, start_at - time.time()))
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1:])
