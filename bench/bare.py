"""The floor under every engine: a plan's messages carried out on its devices, and nothing else.

``NoEngine()(plan)`` calls what each message asks of its object (``trigger``, ``set``, ``read``,
``stage``...), blocks on a group's statuses at ``wait`` and answers ``open_run`` with a uid, and
does nothing else: no documents, no subscribers, no checkpoints, no pause, no suspenders, no
event loop. What a plan costs here is the cost of the plan (bluesky's plan library, with the
runengine.compat patches on, as our calls have them) and of its devices (ophyd's Status
machinery, the Channel Access round trips). No engine can run the plan faster, so
``no engine / bluesky`` is the best ratio any engine could reach on that plan: the ceiling
beside each target in the tables.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from runengine.documents import new_uid

# Commands that call the same-named method of their object and hand back its result.
_CALLS = {
    "trigger": "trigger",
    "set": "set",
    "kickoff": "kickoff",
    "complete": "complete",
    "read": "read",
    "describe": "describe",
    "locate": "locate",
    "stage": "stage",
    "unstage": "unstage",
    "stop": "stop",
}
_OPTIONAL = {"stage", "unstage", "stop"}  # skipped when the object has no such method
_TRACKED = {"trigger", "set", "kickoff", "complete", "stage", "unstage"}


class NoEngine:
    """Run a plan with no engine at all (see the module's docstring); ``subs`` are ignored."""

    def __call__(self, plan: Iterable, subs: Any = None) -> None:
        groups: dict[Any, list] = defaultdict(list)
        gen = iter(plan)
        send = getattr(gen, "send", None)
        response: Any = None
        while True:
            try:
                msg = send(response) if send is not None else next(gen)
            except StopIteration:
                return
            response = self._carry_out(msg, groups)

    @staticmethod
    def _carry_out(msg: Any, groups: dict[Any, list]) -> Any:
        command = msg.command
        method = _CALLS.get(command)
        if method is not None:
            kwargs = dict(msg.kwargs)
            group = kwargs.pop("group", None)
            call = getattr(msg.obj, method, None)
            if call is None and command in _OPTIONAL:
                return None
            result = call(*msg.args, **kwargs)
            if command in _TRACKED and hasattr(result, "add_callback"):
                groups[group].append(result)
            return result
        if command == "wait":
            group = msg.args[0] if msg.args else msg.kwargs.get("group")
            for status in groups.pop(group, ()):
                status.wait(msg.kwargs.get("timeout"))
            return True
        if command == "open_run":
            return new_uid()
        if command == "sleep":
            time.sleep(msg.args[0])
        return None
