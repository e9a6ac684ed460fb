"""The list of known, deliberate deviations and the sorting of our failures against it.

``deviations.json`` holds ``{"deviations": [{"test", "category", "why"}, ...]}``. ``test`` is
a node id (``file.py::test`` or ``file.py::Class::test``); without a ``[...]`` it covers every
parametrization of the test, and ``*`` matches any run of characters.

A test that fails on our engine is, in this order: ``environment`` if it fails on bluesky's
engine too (a missing package, the network, a flaky bluesky test), ``expected`` if an entry
lists it, else a ``regression``. An entry none of whose tests is an expected failure is
``stale``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .suite import Outcome

DEFAULT_PATH = Path(__file__).with_name("deviations.json")


@dataclass(frozen=True)
class Deviation:
    """One entry: which tests, a short category and why we deviate."""

    test: str
    category: str
    why: str

    @property
    def file(self) -> str:
        """The file part of the pattern."""
        return self.test.split("::", 1)[0]

    def matches(self, node: str) -> bool:
        """Whether ``node`` (a node id) is covered by this entry."""
        regex = ".*".join(map(re.escape, self.test.split("*")))
        base = node.split("[", 1)[0]
        return re.fullmatch(regex, node) is not None or re.fullmatch(regex, base) is not None


@dataclass
class Classification:
    """Our failures sorted against bluesky's outcomes and the deviations list."""

    environment: list[tuple[Outcome, Outcome]] = field(default_factory=list)
    expected: list[tuple[Outcome, Deviation]] = field(default_factory=list)
    regressions: list[Outcome] = field(default_factory=list)
    stale: list[tuple[Deviation, str]] = field(default_factory=list)
    ours_only: list[str] = field(default_factory=list)


def load_deviations(path: Path = DEFAULT_PATH) -> list[Deviation]:
    """Read the deviations list; a malformed entry raises ValueError naming it."""
    entries = json.loads(path.read_text())["deviations"]
    deviations = []
    for index, entry in enumerate(entries):
        if set(entry) != {"test", "category", "why"} or not all(entry.values()):
            raise ValueError(f"{path} entry {index}: needs exactly test, category and why")
        deviations.append(Deviation(entry["test"], entry["category"], entry["why"]))
    return deviations


def classify(
    ours: dict[str, Outcome],
    baseline: dict[str, Outcome],
    deviations: list[Deviation],
    files: list[str],
) -> Classification:
    """Sort the failures in ``ours`` by ``baseline`` (bluesky's) and ``deviations``."""
    result = Classification()
    for node, outcome in sorted(ours.items()):
        theirs = baseline.get(node)
        if not outcome.bad:
            if theirs is not None and theirs.bad:
                result.ours_only.append(node)
            continue
        entry = next((d for d in deviations if d.matches(node)), None)
        if theirs is not None and theirs.bad:
            result.environment.append((outcome, theirs))
        elif entry is not None:
            result.expected.append((outcome, entry))
        else:
            result.regressions.append(outcome)
    used = {id(entry) for _, entry in result.expected}
    for entry in deviations:
        if id(entry) in used or not any(_file_matches(entry, f) for f in files):
            continue
        matched = [o for n, o in ours.items() if entry.matches(n)]
        reason = (
            "matches no test"
            if not matched
            else "fails on bluesky's engine too"
            if any(o.bad for o in matched)
            else "now passes"
        )
        result.stale.append((entry, reason))
    return result


def _file_matches(entry: Deviation, file: str) -> bool:
    return Deviation(entry.file, "", "").matches(file)
