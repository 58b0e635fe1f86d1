"""A task reaches its run's live parts through `run.current()` (rootfi_sync/run/parts.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

import pytest

from rootfi_sync import run


def parts(name: str) -> Any:
    return run.RunParts(name, None, None, None)  # type: ignore[arg-type]


def test_outside_a_run_current_says_no_run_is_open() -> None:
    with pytest.raises(RuntimeError, match="no rootfi-sync run is open"):
        run.current()


def test_a_run_is_current_inside_its_block_only_and_blocks_nest() -> None:
    with run.current_run(parts("outer")):
        with run.current_run(parts("inner")):
            assert run.current().ledger == "inner"
        assert run.current().ledger == "outer"
    with pytest.raises(RuntimeError):
        run.current()


def test_a_thread_started_in_a_copy_of_the_context_sees_the_run_as_a_prefect_task_does() -> None:
    with run.current_run(parts("the run")), ThreadPoolExecutor(1) as pool:
        seen = pool.submit(copy_context().run, run.current).result()
    assert seen.ledger == "the run"
