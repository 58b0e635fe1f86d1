"""The suite's own scheduling (tests/conftest.py): each test FIRST names still exists, so the
longest tests keep starting first. A prefix left behind by a rename would match nothing and
silently give the wall time back (nothing else would fail)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import FIRST, TESTS


@pytest.mark.parametrize("prefix", FIRST)
def test_each_prefix_of_first_names_a_test_that_exists(prefix: str) -> None:
    path, _, name = prefix.partition("::")
    module = TESTS.parent / path
    assert module.is_file(), f"{path} is gone"
    tests = [
        node.name
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test")
    ]
    assert any(t.startswith(name) for t in tests), f"no test in {path} starts with {name!r}"
