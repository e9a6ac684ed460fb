"""The thread that hears Ctrl+C, when it is still busy as the call returns (in this process)."""

import os
import signal
import threading

from runengine.sigint import SigintHandler


def test_a_worker_still_busy_after_the_call_never_reads_a_reused_descriptor():
    """The call waits 1 s for the worker, then goes on. The worker's pipe used to be closed
    then, under it: the next file opened took the pipe's number, and the worker, once free,
    read (and swallowed) that file's data."""
    busy, free = threading.Event(), threading.Event()

    class Engine:  # whose thread is blocked: the press is taken but not answered
        state = "running"

        def _request_pause(self, *args, **kwargs):
            busy.set()
            free.wait(20)

    before = signal.getsignal(signal.SIGINT)
    handler = SigintHandler(Engine())
    theirs = None
    try:
        with handler:
            signal.raise_signal(signal.SIGINT)  # a press: the worker takes it and waits
            assert busy.wait(20)
        assert handler._worker is not None and handler._worker.is_alive()
        theirs = os.pipe()  # someone else's file, opened once the call is back
        os.write(theirs[1], b"someone else's data")
        free.set()
        handler._worker.join(20)
        assert not handler._worker.is_alive()
        os.set_blocking(theirs[0], False)
        assert os.read(theirs[0], 64) == b"someone else's data"
    finally:
        free.set()
        signal.signal(signal.SIGINT, before)
        for fd in theirs or ():
            os.close(fd)
