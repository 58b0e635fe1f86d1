"""`rootfi-sync demo`, run as a user runs it: a whole command in a fresh process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_syncs_sample_customers_and_explains_the_failures(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOTFI_", "SOURCE_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["COLUMNS"] = "200"
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # the user's server: the demo leaves it be
    command = ["demo", "--count", "60", "--folder", str(tmp_path / "demo")]
    result = subprocess.run(
        [sys.executable, "-m", "rootfi_sync", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "CancelledError" not in output
    assert "synced" in output and "not synced" in output
    assert "is not a valid email address" in output  # an invalid row, with its reason
    assert "refused.example is not accepted" in output  # a refusal by the platform
    assert "the second sent 0" in output
    assert "| INFO" not in output  # a quiet console...
    # ...yet each run's logs are in the temporary server's database, for `prefect server start`
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as db:
        finished = db.execute(
            "SELECT f.name FROM log l JOIN flow_run f ON f.id = l.flow_run_id"
            " WHERE l.task_run_id IS NULL AND l.message = 'Finished in state Completed()'"
        ).fetchall()
        reports = db.execute("SELECT count(*) FROM log WHERE message LIKE 'company 1089: picked %'")
        assert len(finished) == 2 and reports.fetchone() == (2,)
