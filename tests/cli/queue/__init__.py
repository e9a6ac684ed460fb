"""runengine queue: bluesky-queueserver over runengine, its profile, launchers and command."""
