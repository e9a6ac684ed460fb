"""bluesky-queueserver end-to-end tests: RE Managers on loopback, bluesky's engine and ours."""
