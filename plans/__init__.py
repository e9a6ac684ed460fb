"""runengine.plans: plans that bluesky's library does not have."""

from .pausing import cautious_stepscan, do_nothing

__all__ = ["cautious_stepscan", "do_nothing"]
