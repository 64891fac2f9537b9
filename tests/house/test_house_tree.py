"""The house rules hold on this checkout's hpcdist/ (the checkers are in house_checks.py, their own
tests in test_house_checks.py). A failure lists every breach, one per line."""

from __future__ import annotations

from pathlib import Path

import pytest

import house_checks as checks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree() -> checks.Tree:
    return checks.Tree(ROOT)


def _none(findings: list[str]) -> None:
    assert not findings, f"{len(findings)} breach(es):\n" + "\n".join(findings)


def test_house_tree_every_module_parses(tree):
    _none(checks.unparsed(tree))


def test_house_tree_has_no_import_cycle(tree):
    _none(checks.import_cycles(tree))


def test_house_tree_imports_lazily_only_what_may_be(tree):
    _none(checks.lazy_imports(tree))


def test_house_tree_every_module_imports_in_a_fresh_interpreter(tree):
    _none(checks.import_each(tree))


def test_house_tree_scheduling_imports_no_threads_clock_os_or_mpi(tree):
    _none(checks.impure_imports(tree))


def test_house_tree_scheduling_loads_no_thread_user_transport_or_mpi4py(tree):
    _none(checks.impure_closure(tree))


def test_house_tree_no_module_over_the_size_limit(tree):
    _none(checks.oversized(tree, limit=500))


def test_house_tree_no_private_name_used_across_modules(tree):
    _none(checks.private_uses(tree))


def test_house_tree_only_transports_mpi_imports_mpi4py_and_only_cli_imports_click(tree):
    _none(checks.foreign_importers(tree))
