"""Commands that gather what flyers recorded: collect (event pages and stream assets)."""

from __future__ import annotations

from typing import Any

from bluesky.utils import Msg

from .registry import command


async def describe_collect_into(bundle: Any, stream: str, obj: Any) -> None:
    """Teach ``bundle`` what ``obj.describe_collect()`` says about ``stream``."""
    raise NotImplementedError("declare_stream(collect=True) is being written")


@command("collect")
async def collect(RE: Any, msg: Msg) -> Any:
    """Collect data a flyer recorded and emit it as event pages (and asset documents)."""
    raise NotImplementedError("collect is being written")
