"""Every ```python block of every documentation page runs here, so the docs cannot drift.

A page's blocks run in order in one namespace, in a fresh temporary directory (also the
run store's default, through ``XDG_DATA_HOME`` and ``RUNENGINE_STORE``). Conventions, for
page authors:

- ```` ```python norun ```` marks a block that is not run (it needs a terminal, e.g. Ctrl+C);
  the page says where it is tested instead. Use sparingly.
- A MyST comment line ``% docs-test: integration`` anywhere on a page marks it as starting the
  simulated IOCs: its test is marked ``integration``.
- ``% docs-test: redis`` gives the page a redis-server of its own on a free loopback port
  (``tests/docs/conftest.py``), its URL in the namespace as ``REDIS_URL``; marked ``redis``.
- Other languages (```` ```console ````, ```` ```text ````) are never run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

DOCS = Path(__file__).resolve().parents[2] / "docs"
INTEGRATION = re.compile(r"^%\s*docs-test:\s*integration\s*$", re.MULTILINE)
REDIS = re.compile(r"^%\s*docs-test:\s*redis\s*$", re.MULTILINE)


def pages() -> list[Path]:
    """Every markdown page of the site (not the build output)."""
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)


def blocks(path: Path) -> list[tuple[int, str, bool]]:
    """``(first line, code, runnable)`` of each fenced python block, in page order."""
    found = []
    for token in MarkdownIt("commonmark").parse(path.read_text()):
        if token.type != "fence":
            continue
        words = token.info.split()
        if not words or words[0] != "python":
            continue
        found.append((token.map[0] + 2, token.content, "norun" not in words[1:]))
    return found


def _params():
    for path in pages():
        text = path.read_text()
        marks = [pytest.mark.integration] if INTEGRATION.search(text) else []
        marks += [pytest.mark.redis] if REDIS.search(text) else []
        if any(runnable for _, _, runnable in blocks(path)):
            yield pytest.param(path, id=str(path.relative_to(DOCS)), marks=marks)


@pytest.mark.parametrize("page", list(_params()))
def test_page_examples(page, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("RUNENGINE_STORE", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    if REDIS.search(page.read_text()):
        namespace["REDIS_URL"] = request.getfixturevalue("docs_redis_url")
    rel = page.relative_to(DOCS)
    try:
        for line, code, runnable in blocks(page):
            if runnable:
                exec(compile(code, f"docs/{rel}:{line}", "exec"), namespace)
    finally:
        _clean_up(namespace)


def _clean_up(namespace: dict) -> None:
    """Leave no engine mid-plan, no agent thread, no IOC behind a failing page."""
    from runengine import RunEngine
    from runengine.cli.queue.manager import QueueManager
    from runengine.devices.beamline import Beamline
    from runengine.heartbeats import Registry
    from runengine.scaleout.redis_server import RedisServer

    for value in list(namespace.values()):
        if isinstance(value, Registry | QueueManager):
            value.stop()  # joins its threads or processes; a no-op when not started
        elif isinstance(value, RunEngine) and not value.state.is_idle:
            if value.state.is_panicked:
                value.all_is_well()
            if not value.state.is_idle:
                try:
                    value.halt()
                except Exception:
                    pass
        elif isinstance(value, Beamline) and value.running:
            value.stop()
    for value in list(namespace.values()):  # after the managers that use them
        if isinstance(value, RedisServer):
            value.stop()


def test_pages_are_found():
    names = {str(p.relative_to(DOCS)) for p in pages()}
    assert "index.md" in names and "tutorial.md" in names
    assert all(not n.startswith("_build") for n in names)


def test_norun_blocks_are_rare_and_explained():
    """A page with a block that is not run says where that behaviour is tested."""
    for path in pages():
        skipped = [line for line, _, runnable in blocks(path) if not runnable]
        if skipped:
            assert len(skipped) <= 3, f"{path.name}: too many norun blocks ({skipped})"
            assert "tests/" in path.read_text(), f"{path.name}: say where norun code is tested"


def test_the_conventions_are_parsed(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "% docs-test: integration\n\n```python\nx = 1\n```\n\n```python norun\n"
        "boom()\n```\n\n```console\n$ ls\n```\n"
    )
    assert blocks(page) == [(4, "x = 1\n", True), (8, "boom()\n", False)]
    assert INTEGRATION.search(page.read_text()) and not REDIS.search(page.read_text())
    assert REDIS.search("text\n% docs-test: redis\n")
    assert os.fspath(DOCS).endswith("docs")
