"""Golden tests of the text views: list(), stats(), debrief(), to_dot(), in Unicode and ASCII.

Ids are stable: depth first in topological order, nested graphs numbered before what follows.
"""

from __future__ import annotations

import asyncio

from runengine.graph import Action, ActionGraph, badge


async def ok(value):
    await asyncio.sleep(0.01)
    return value


async def bad():
    await asyncio.sleep(0.01)
    raise ValueError("bad value")


async def forever():
    while True:
        await asyncio.sleep(0.01)


def build() -> ActionGraph:
    fetch = Action(ok, 1, label="fetch")
    check = Action(bad, label="check", critical=False, requires=fetch)
    report = Action(ok, 3, label="report", requires=check)
    watch = Action(forever, label="watch", forever=True, critical=False)
    inner = ActionGraph(
        Action(ok, 4, label="home"),
        Action(ok, 5, label="cool", timeout=2),
        label="prep",
        requires=fetch,
    )
    scan = Action(ok, 6, label="scan", requires=inner)
    return ActionGraph(fetch, check, report, watch, inner, scan, label="demo")


BEFORE_UNICODE = """\
⚠   ⚐    1 fetch
    ⚐    2 check - requires {1}
⚠   ⚐    3 report - requires {2}
    ⚐ ∞  4 watch
⚠   ⚐    5 prep - requires {1}
> ⚠   ⚐    6 home
> ⚠   ⚐    7 cool
⚠   ⚐    8 scan - requires {5}"""

BEFORE_ASCII = """\
!   .    1 fetch
    .    2 check - requires {1}
!   .    3 report - requires {2}
    . 8  4 watch
!   .    5 prep - requires {1}
> !   .    6 home
> !   .    7 cool
!   .    8 scan - requires {5}"""

AFTER_DETAILS = """\
⚠☉  ☓    1 fetch -> 1
 ★  ☓    2 check - requires {1} -> ValueError('bad value')
⚠   ⊘    3 report - requires {2}
    ⊗ ∞  4 watch
⚠☉  ☓    5 prep - requires {1}
> ⚠☉  ☓    6 home -> 4
> ⚠☉  ☓    7 cool (timeout 2s) -> 5
⚠☉  ☓    8 scan - requires {5} -> 6"""

AFTER_ASCII = """\
!:) x    1 fetch
 :( x    2 check - requires {1}
!   -    3 report - requires {2}
    c 8  4 watch
!:) x    5 prep - requires {1}
> !:) x    6 home
> !:) x    7 cool
!:) x    8 scan - requires {5}"""

DEBRIEF = """\
demo: a non-critical action failed - 6D + 0R + 0I = 6
⚠☉  ☓    1 fetch
 ★  ☓    2 check - requires {1}
⚠   ⊘    3 report - requires {2}
    ⊗ ∞  4 watch
⚠☉  ☓    5 prep - requires {1}
> ⚠☉  ☓    6 home
> ⚠☉  ☓    7 cool
⚠☉  ☓    8 scan - requires {5}
===== 1 non-critical action(s) raised an exception =====
 2 check (failed):
   ValueError: bad value"""

DOT = """\
digraph "demo" {
  compound=true;
  graph [fontname=Arial];
  node [shape=box, fontname=Arial, style="rounded"];
  1 [label="1: fetch", style="rounded", color=red, penwidth=2];
  2 [label="2: check", style="rounded"];
  3 [label="3: report", style="rounded", color=red, penwidth=2];
  4 [label="4: watch", style="rounded,dashed"];
  subgraph cluster_5 {
    label="5: prep";
    style=solid;
    color=red; penwidth=2;
    6 [label="6: home", style="rounded", color=red, penwidth=2];
    7 [label="7: cool", style="rounded", color=red, penwidth=2];
  }
  8 [label="8: scan", style="rounded", color=red, penwidth=2];
  1 -> 2;
  2 -> 3;
  1 -> 6 [lhead=cluster_5];
  6 -> 8 [ltail=cluster_5];
}
"""


def test_listing_before_running():
    g = build()
    assert g.list() == BEFORE_UNICODE
    assert g.list(unicode=False) == BEFORE_ASCII
    assert g.list_safe() == BEFORE_UNICODE
    assert g.stats() == "0D + 0R + 6I = 6"
    assert g.why() == "NOT RUN"
    assert g.to_dot() == DOT  # the structure only: the same before and after


def test_listing_after_running():
    g = build()
    result = g.run()
    assert not result.ok
    assert g.list(details=True) == AFTER_DETAILS
    assert g.list(unicode=False) == AFTER_ASCII
    assert g.stats() == "6D + 0R + 0I = 6"
    assert g.debrief() == DEBRIEF
    assert "Traceback" in g.debrief(details=True)
    assert g.to_dot() == DOT


def test_ids_are_stable_across_runs():
    g = build()
    before = [(a.text_label, a.id) for a in (g._number() and g.iterate())]
    g.run()
    g.run()
    assert [(a.text_label, a.id) for a in g.iterate()] == before


def test_badges_are_seven_characters():
    g = build()
    g.run()
    for action in g.iterate():
        assert len(badge(action)) == len(badge(action, unicode=False)) == 7


def test_export_writes_dot(tmp_path):
    path = tmp_path / "g.dot"
    build().export(str(path))
    assert path.read_text() == DOT
