"""bluesky-queueserver with runengine: the supported way to drive the engine from elsewhere.

``runengine queue`` (:mod:`.command`) starts redis-server (unless one is given), an RE Manager
whose worker imports :mod:`.profile` (``RE``, the simulated beamline, the store, the seed's
controls as functions), and optionally bluesky-httpserver with an API key; all on 127.0.0.1.
:mod:`.manager` and :mod:`.http` are the process launchers, usable from Python and tests.
"""
