"""pytest plugin: run bluesky's own tests on runengine's ``RunEngine``.

Loaded only in the harness's pytest subprocesses, with ``-p tests.bluesky_suite.swap``; never
imported by the harness itself. Before any conftest or test module is imported, it rebinds
``bluesky.run_engine.RunEngine`` and ``bluesky.RunEngine`` to ``runengine.RunEngine``, so
bluesky's ``RE`` fixture (``bluesky/tests/conftest.py``) and every test that constructs a
``RunEngine`` get ours. Nothing else of bluesky is touched: its exceptions, ``Msg``,
``SigintHandler`` and event-loop helpers stay its own, as they are for a user of ours.
"""

from __future__ import annotations

import sys

import bluesky
import bluesky.run_engine
import pytest

import runengine


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser, args) -> None:
    """Rebind bluesky's ``RunEngine`` names before bluesky's conftest imports them."""
    bluesky.run_engine.RunEngine = runengine.RunEngine
    bluesky.RunEngine = runengine.RunEngine


def pytest_report_header(config: pytest.Config) -> str:
    """Say in the session header which engine runs the tests."""
    return f"RunEngine: runengine {runengine.__version__} ({runengine.RunEngine.__module__})"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse to run if a module bound bluesky's RunEngine before the rebinding."""
    stale = [
        name
        for name, module in list(sys.modules.items())
        if name.startswith("bluesky.tests")
        and getattr(module, "RunEngine", runengine.RunEngine) is not runengine.RunEngine
    ]
    if stale:
        raise pytest.UsageError(f"bluesky's RunEngine is still bound in {', '.join(stale)}")
