"""Run the real `sync_customers` flow once in this process; write its counts and peak RSS.

    python -m bench.run_flow OUT.json

Everything comes from the environment, as for `python -m flows.sync_customers` (the harness
sets SOURCE_DATABASE_URL, ROOTFI_*, PREFECT_API_URL and a fresh PREFECT_HOME). The JSON holds
the flow's returned counts, its flow run id, the seconds spent importing and in the flow call,
the SQL statements the flow sent to the source database (by verb; an executemany counts once,
the rows it carried apart; from a SQLAlchemy `before_cursor_execute` listener: rows are
`len(context.compiled_parameters)`, counted once per statement execution, since an
"insertmanyvalues" executemany reaches the listener with the flattened values of a whole page
of rows, once per page) and the peak
RSS: `vmhwm_kib`, VmHWM of /proc/self/status after the flow returned. `maxrss_kib`
(getrusage(RUSAGE_SELF).ru_maxrss) is written too but is not the flow's own figure: on Linux
it keeps the high-water mark of the image replaced by exec, i.e. of the forked copy of the
harness (which holds the synthetic rows) whenever that one was larger.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import weakref
from collections import Counter
from typing import Any

from bench.procs import read_status


def count_statements() -> Counter[str]:
    """Count the SQL statements the flow sends, by verb, and whether each was an executemany."""
    import sqlalchemy as sa

    seen: Counter[str] = Counter()
    counted: weakref.WeakSet[Any] = weakref.WeakSet()  # contexts whose rows are counted

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        seen[f"{verb}{' executemany' if many else ''}"] += 1
        if context is None:
            seen[f"{verb} rows"] += 1
        elif context not in counted:  # insertmanyvalues calls once per page, same context
            counted.add(context)
            seen[f"{verb} rows"] += len(getattr(context, "compiled_parameters", None) or [{}])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    return seen


def main() -> int:
    out = sys.argv[1]
    started = time.perf_counter()
    statements = count_statements()
    from flows.sync_customers import sync_customers

    imported = time.perf_counter()
    state = sync_customers(return_state=True)
    finished = time.perf_counter()
    result = state.result(raise_on_failure=False)
    record = {
        "state": state.type.value,
        "flow_run_id": str(state.state_details.flow_run_id),
        "counts": result if isinstance(result, dict) else None,
        "error": None if isinstance(result, dict) else repr(result)[:2000],
        "import_seconds": imported - started,
        "flow_call_seconds": finished - imported,
        "vmhwm_kib": read_status(os.getpid()).get("VmHWM", 0),  # peak RSS since exec
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "sql_statements": dict(statements),
    }
    with open(out, "w") as fh:
        json.dump(record, fh, default=str)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
