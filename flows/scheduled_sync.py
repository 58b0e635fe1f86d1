"""sync-customers and sync-all-companies with a run timeout that fits their 15-minute schedule
(the entries of scheduled-sync and all-companies).

The same flow (name, parameters, code) with `timeout_seconds`: a run still going after 14
minutes is stopped before the next one is due, so that one is not cancelled for overlapping
(the deployment runs one at a time). On timeout Prefect raises in the flow: the batches whose
requests are in flight are awaited and recorded, the report and event are published, and the
run ends `TimedOut` (a Failed state, which the "run failed" alert reports). A batch caught
between its recorded intent and its request stays SENDING; once its lease runs out
(ROOTFI_LEASE_SECONDS) the next run takes it over as in doubt and looks it up in RootFi before
sending anything. Manual and CLI runs, and the fan-out's children, have no timeout: a child
still running when its fan-out times out goes on, and the next tick leaves the customers it
holds alone (their leases), so the two never send one customer twice.
"""

from __future__ import annotations

from flows.sync_all_companies import sync_all_companies
from flows.sync_customers import sync_customers

TIMEOUT_SECONDS = 14 * 60

scheduled_sync = sync_customers.with_options(timeout_seconds=TIMEOUT_SECONDS)
scheduled_all_companies = sync_all_companies.with_options(timeout_seconds=TIMEOUT_SECONDS)

if __name__ == "__main__":
    scheduled_sync()
