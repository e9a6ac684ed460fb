"""The engine's console layer: status lines and the help after an interruption."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading

import pytest
from bluesky.run_engine import PAUSE_MSG
from tqdm import tqdm

from runengine import console
from runengine.console import PAUSED_HELP, announce, bars_hidden, interruption_help


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def terminal():
    """A fake terminal as stdout (in the test's body: pytest's capture replaces sys.stdout
    after the fixtures are set up)."""
    out = FakeTerminal()
    console._echo_pending = False
    with contextlib.redirect_stdout(out):
        yield out
    console._echo_pending = False


def test_lines_from_two_threads_never_glue():
    def many(tag: str) -> None:
        for i in range(300):
            announce(f"{tag} line {i} ends here.")

    threads = [threading.Thread(target=many, args=(tag,)) for tag in "ab"]
    with terminal() as stdout:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 600
    assert all(line.endswith("ends here.") and line.count("line") == 1 for line in lines)


def test_a_visible_bar_is_cleared_first_and_drawn_again_after():
    with terminal() as stdout:
        bar = tqdm(total=10, file=stdout, ncols=60, mininterval=0)
        try:
            bar.update(3)
            before = len(stdout.getvalue())
            announce("Pausing...")
            written = stdout.getvalue()[before:]
        finally:
            bar.close()
    head, _, tail = written.partition("Pausing...\n")
    assert head.startswith("\r") and head.strip() == ""  # the bar's line wiped, not glued onto
    assert "3/10" in tail  # and the bar back below the line


def _tqdm_lock_is_free(bar) -> bool:
    """Whether another thread (the engine's, drawing the bar) can take tqdm's lock now."""
    taken: list[bool] = []

    def take() -> None:
        for lock in bar.get_lock().locks:
            got = lock.acquire(timeout=5)
            taken.append(got)
            if got:
                lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(10)
    return bool(taken) and all(taken)


@pytest.mark.parametrize("where", ["moveto", "display"])  # clearing the bar, drawing it again
def test_a_ctrl_c_while_the_prompt_moves_the_bar_leaves_tqdm_unlocked(monkeypatch, where):
    """bars_hidden runs on the main thread around the prompt, where Ctrl+C raises
    KeyboardInterrupt anywhere: raised inside tqdm's clear() or refresh(), it used to leave
    tqdm's lock held, and the engine's thread stopped for good at its next bar update."""
    with terminal() as stdout:
        bar = tqdm(total=10, file=stdout, ncols=60, mininterval=0)
        try:
            bar.update(3)

            def pressed(*args, **kwargs):
                raise KeyboardInterrupt

            monkeypatch.setattr(bar, where, pressed)
            with pytest.raises(KeyboardInterrupt), bars_hidden():
                pass
            monkeypatch.undo()
            assert _tqdm_lock_is_free(bar)
        finally:
            bar.close()


def test_an_echoed_ctrl_c_is_overwritten(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    with terminal() as stdout:
        console.note_keypress_echo()
        announce("Ctrl+C: pausing.")
        announce("Next.")
        monkeypatch.setenv("TERM", "dumb")  # no escape codes where they would print as text
        console.note_keypress_echo()
        announce("Again.")
    assert stdout.getvalue() == "\r\x1b[KCtrl+C: pausing.\nNext.\n\rAgain.\n"


def test_console_needs_only_the_standard_library():
    """The engine core imports it: loading the file alone imports nothing else."""
    code = (
        "import importlib.util, sys; before = set(sys.modules); "
        f"spec = importlib.util.spec_from_file_location('alone', {console.__file__!r}); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "module.announce('ok'); "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} "
        "- set(sys.stdlib_module_names)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["ok", "[]"]


def test_the_paused_help_names_the_real_exit_status():
    assert interruption_help("paused") == PAUSED_HELP
    assert interruption_help("paused", PAUSE_MSG) == PAUSED_HELP  # bluesky's wording replaced
    assert "exit_status='abort'" in PAUSED_HELP and "exit_stats" not in PAUSED_HELP
    assert interruption_help("paused", "My own pause message.") == "My own pause message."


@pytest.mark.parametrize(
    ("state", "beneath", "says", "never"),
    [
        ("panicked", "aborting", "RE.all_is_well()", "RE.resume()"),
        ("panicked", "idle", "the plan is aborted", "RE.resume()"),
        ("panicked", "paused", "the paused plan stays paused", "exit_stats"),
        ("idle", None, "nothing to resume", "RE.resume()"),
        ("running", None, "pauses as soon as it is free", "exit_stats"),
        ("aborting", None, "winding down", "RE.resume()"),
    ],
)
def test_the_help_after_an_interruption_depends_on_the_state(state, beneath, says, never):
    text = interruption_help(state, PAUSE_MSG, beneath)
    assert says in text and never not in text
