"""Each house checker, fed a small synthetic tree, reports the breach it exists for (and only it)."""

from __future__ import annotations

import textwrap

import pytest

from house_checks import (
    MAX_LINES, Tree, foreign_importers, impure_closure, impure_imports, import_cycles, import_each,
    lazy_imports, oversized, private_uses, thread_users, unparsed,
)


@pytest.fixture
def make_tree(tmp_path):
    """``make_tree({"a.py": source, ...})``: a tree of package ``hpcdist`` under tmp_path; every
    directory gets an ``__init__.py`` unless one is given."""

    def make(files: dict[str, str]) -> Tree:
        files = {f"hpcdist/{name}": textwrap.dedent(text) for name, text in files.items()}
        for name in list(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                files.setdefault("/".join(parts[:i]) + "/__init__.py", "")
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return Tree(tmp_path)

    return make


# -- import graph ---------------------------------------------------------------------------------


def test_imports_resolve_modules_names_relative_and_lazy(make_tree):
    tree = make_tree({
        "a.py": "from hpcdist import b\nfrom hpcdist.b import thing\nfrom . import c as see\n",
        "b.py": "thing = 1\n",
        "c.py": "def f():\n    import hpcdist.sub.d\n    from ..sub import d\n",
        "sub/d.py": "from .. import b\nimport importlib\nimportlib.import_module('hpcdist.c')\n",
    })
    found = {(i.module, i.target, i.name, i.lazy, i.dynamic) for i in tree.imports()}
    assert ("hpcdist.a", "hpcdist.b", "", False, False) in found  # b is a module
    assert ("hpcdist.a", "hpcdist.b", "thing", False, False) in found  # thing is a name in b
    assert ("hpcdist.a", "hpcdist.c", "", False, False) in found
    assert ("hpcdist.c", "hpcdist.sub.d", "", True, False) in found
    assert ("hpcdist.sub.d", "hpcdist.b", "", False, False) in found
    assert ("hpcdist.sub.d", "hpcdist.c", "", False, True) in found
    assert tree.graph()["hpcdist.c"] == {"hpcdist.sub.d": 2}


def test_no_cycle_no_finding(make_tree):
    tree = make_tree({"a.py": "import hpcdist.b\n", "b.py": "import json\n"})
    assert import_cycles(tree) == []


def test_two_modules_importing_each_other_is_a_cycle(make_tree):
    tree = make_tree({"a.py": "from hpcdist import b\n", "b.py": "def f():\n    from hpcdist.a import x\n"})
    [finding] = import_cycles(tree)
    assert finding == "import cycle: hpcdist.a (line 1) -> hpcdist.b (line 2) -> hpcdist.a"


def test_a_lazy_or_dynamic_import_closes_a_cycle_too(make_tree):
    tree = make_tree({
        "x/one.py": "import hpcdist.x.two\n",
        "x/two.py": "import hpcdist.y\n",
        "y.py": "import importlib\ndef f():\n    return importlib.import_module('hpcdist.x.one')\n",
    })
    [finding] = import_cycles(tree)
    assert "hpcdist.x.one (line 1) -> hpcdist.x.two (line 1) -> hpcdist.y (line 3) -> hpcdist.x.one" in finding


def test_a_package_init_importing_its_child_that_imports_the_package_is_a_cycle(make_tree):
    tree = make_tree({"p/__init__.py": "from hpcdist.p.m import M\n", "p/m.py": "from hpcdist.p import OTHER\n"})
    [finding] = import_cycles(tree)
    assert "hpcdist.p" in finding and "hpcdist.p.m" in finding


def test_a_knot_names_every_module_in_it(make_tree):
    tree = make_tree({
        "a.py": "import hpcdist.b\nimport hpcdist.c\n", "b.py": "import hpcdist.a\n",
        "c.py": "import hpcdist.d\n", "d.py": "import hpcdist.a\n",
    })
    [finding] = import_cycles(tree)
    assert finding.startswith("import cycle: hpcdist.a (line 1) -> hpcdist.b (line 1) -> hpcdist.a")
    assert finding.endswith("4 modules in this knot: hpcdist.a, hpcdist.b, hpcdist.c, hpcdist.d")


def test_lazy_imports_only_of_listed_modules_and_our_own(make_tree):
    tree = make_tree({
        "a.py": "import json\ndef f():\n    import numpy\n    from mpi4py import MPI\n    import hpcdist.b\n"
                "    import subprocess\n",
        "b.py": "",
    })
    assert lazy_imports(tree) == [
        "hpcdist.a:6: imports subprocess inside a function (not hpcdist's own, not in LAZY_ALLOWED)"
    ]
    assert lazy_imports(tree, allowed={"numpy", "mpi4py", "subprocess"}) == []


def test_import_each_names_a_module_that_fails_in_a_fresh_interpreter(make_tree):
    # a and b import a name from each other: whichever is imported first, the other finds it
    # partially initialised
    tree = make_tree({
        "a.py": "from hpcdist.b import B\nA = 1\n",
        "b.py": "from hpcdist.a import A\nB = 2\n",
        "c.py": "import hpcdist.nowhere\n",
        "fine.py": "X = 1\n",
        "lazy.py": "def f():\n    import mpi4py\n",
        "eager.py": "import mpi4py\n",
        "__main__.py": "raise SystemExit('never imported')\n",
    })
    found = import_each(tree)
    assert len(found) == 4, found
    assert found.pop() == ("import hpcdist.eager (fresh interpreter): importing it loads mpi4py "
                            "(import it inside the function that needs MPI)")
    assert found[0].startswith("import hpcdist.a (fresh interpreter): ImportError: cannot import name 'A' "
                               "from partially initialized module 'hpcdist.a'")
    assert found[1].startswith("import hpcdist.b (fresh interpreter): ImportError: cannot import name 'B' "
                               "from partially initialized module 'hpcdist.b'")
    assert found[2] == "import hpcdist.c (fresh interpreter): ModuleNotFoundError: No module named 'hpcdist.nowhere'"


# -- the pure scheduling core ----------------------------------------------------------------------


def test_impure_imports_in_the_scheduling_package(make_tree):
    tree = make_tree({
        "runtime/scheduling/state.py": "import heapq\ndef f():\n    import time\nfrom os import path\n",
        "runtime/scheduling/policy.py": "from threading import Lock\n",
        "runtime/worker.py": "import threading\n",
    })
    assert sorted(impure_imports(tree)) == [
        "hpcdist.runtime.scheduling.policy:1: the pure hpcdist.runtime.scheduling imports threading",
        "hpcdist.runtime.scheduling.state:3: the pure hpcdist.runtime.scheduling imports time",
        "hpcdist.runtime.scheduling.state:4: the pure hpcdist.runtime.scheduling imports os",
    ]


def test_impure_closure_names_thread_users_and_transports_loaded(make_tree):
    tree = make_tree({
        "runtime/scheduling/state.py": "import hpcdist.helper\n",
        "helper.py": "import hpcdist.transports.base\nimport hpcdist.errors\n",
        "transports/base.py": "",
        "errors.py": "import concurrent.futures\n",  # exceptions only: not a thread user
        "locks.py": "from concurrent.futures import ThreadPoolExecutor\n",
        "runtime/scheduling/vocabulary.py": "import hpcdist.locks\n",
    })
    assert thread_users(tree) == {"hpcdist.locks"}
    assert impure_closure(tree) == [
        "importing hpcdist.runtime.scheduling loads hpcdist.transports.base",
        "importing hpcdist.runtime.scheduling loads hpcdist.locks, which uses threads",
    ]


def test_a_pure_scheduling_package_passes(make_tree):
    tree = make_tree({"runtime/scheduling/state.py": "import heapq\nimport hpcdist.errors\n", "errors.py": ""})
    assert impure_imports(tree) == [] and impure_closure(tree) == []


# -- size ---------------------------------------------------------------------------------------


def test_a_module_over_the_limit_is_named(make_tree):
    tree = make_tree({"big.py": "x = 1\n" * 600, "ok.py": "x = 1\n" * MAX_LINES})
    assert oversized(tree) == [f"hpcdist/big.py: 600 lines (limit {MAX_LINES})"]


# -- private names -----------------------------------------------------------------------------


def test_importing_a_private_name_of_another_module(make_tree):
    tree = make_tree({
        "a.py": "_helper = 1\n__version__ = 2\n",
        "b.py": "from hpcdist.a import _helper, __version__\nfrom json import _default_encoder\n",
    })
    assert private_uses(tree) == ["hpcdist.b:1: imports private _helper from hpcdist.a"]


def test_a_private_attribute_of_an_imported_module(make_tree):
    tree = make_tree({
        "a.py": "_TABLE = {}\n",
        "b.py": "import hpcdist.a as a\nfrom hpcdist import a as again\nimport hpcdist.a\n"
                "a._TABLE\nagain._TABLE\nhpcdist.a._TABLE\na.__name__\n",
    })
    assert private_uses(tree) == [
        "hpcdist.b:4: uses private _TABLE of module hpcdist.a",
        "hpcdist.b:5: uses private _TABLE of module hpcdist.a",
        "hpcdist.b:6: uses private _TABLE of module hpcdist.a",
    ]


def test_reaching_into_another_modules_object(make_tree):
    tree = make_tree({
        "client.py": """
            class Client:
                __slots__ = ("_lock",)
                def __init__(self):
                    self._lock = None
                    self._world = None
                    self.__secret = 1
                def _fetch(self):
                    return self._world, self._lock
            """,
        "futures.py": """
            class Future:
                def __init__(self, client):
                    self._client = client
                def result(self):
                    self._client._fetch()
                    getattr(self._client, "_world")
                    return self._client._lock, self._client.__init__, super()._fetch
            """,
        "other.py": """
            class Other:
                def __init__(self):
                    self._world = None
                def peek(self, client):
                    return client._world  # this module has its own _world: not flagged (heuristic)
            """,
    })
    assert private_uses(tree) == [
        "hpcdist.futures:6: uses _fetch, an attribute private to hpcdist.client",
        "hpcdist.futures:7: uses _world, an attribute private to hpcdist.client, hpcdist.other",
        "hpcdist.futures:8: uses _lock, an attribute private to hpcdist.client",
    ]


def test_only_the_waiter_protocol_of_futures_may_cross_modules(make_tree):
    tree = make_tree({
        "runtime/futures.py": "class F:\n    def __init__(self):\n        self._waiters = []\n        self._key = 1\n",
        "runtime/waiting.py": "def add(f, w):\n    f._waiters.append(w)\n    return f._key\n",
        "runtime/other.py": "def add(f, w):\n    f._waiters.append(w)\n",
    })
    assert private_uses(tree) == [
        "hpcdist.runtime.other:2: uses _waiters, an attribute private to hpcdist.runtime.futures",
        "hpcdist.runtime.waiting:3: uses _key, an attribute private to hpcdist.runtime.futures",
    ]


# -- single importers -----------------------------------------------------------------------------


def test_mpi4py_and_click_have_one_importer_each(make_tree):
    tree = make_tree({
        "transports/mpi.py": "def f():\n    from mpi4py import MPI\n",
        "cli/__init__.py": "import click\n", "cli/options.py": "import click\n",
        "doctor.py": "import importlib\nimportlib.import_module('mpi4py.MPI')\n",
        "pipeline/run.py": "def f():\n    import click.testing\n",
        "bench/peers/rawmpi.py": "def f():\n    from mpi4py import MPI\n",
    })
    assert foreign_importers(tree) == [
        "hpcdist.doctor:2: dynamically imports mpi4py.MPI (only hpcdist.transports.mpi, hpcdist.bench.peers may)",
        "hpcdist.pipeline.run:2: imports click.testing (only hpcdist.cli may)",
    ]


def test_private_attributes_inherited_from_outside_belong_to_the_subclass_module(make_tree):
    tree = make_tree({
        "futures.py": """
            import concurrent.futures as cf
            class Future(cf.Future):
                pass
            def reset(fut):
                fut._exception = None  # concurrent.futures.Future's own attribute: futures.py owns it here
            """,
        "client.py": """
            class Client:
                def _exception(self):
                    pass
                def peek(self, fut):
                    return fut._state
            """,
    })
    assert private_uses(tree) == ["hpcdist.client:6: uses _state, an attribute private to hpcdist.futures"]


def test_a_module_that_does_not_parse_is_named_and_the_rest_still_checked(make_tree):
    tree = make_tree({"broken.py": "def f(:\n", "a.py": "import hpcdist.b\n", "b.py": "import hpcdist.a\n"})
    [finding] = unparsed(tree)
    assert finding.startswith("hpcdist/broken.py: does not parse: ") and finding.endswith("(line 1)")
    assert len(import_cycles(tree)) == 1
