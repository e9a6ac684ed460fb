"""The ``runengine`` command line: every command, its exit codes and its errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from runengine.callbacks.catalog import Catalog
from runengine.cli.main import EXIT_ABORTED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from runengine.cli.runner import make_plan
from runengine.devices.launcher import client_env


@pytest.fixture
def store(tmp_path, monkeypatch):
    directory = tmp_path / "runs"
    monkeypatch.setenv("RUNENGINE_STORE", str(directory))
    return directory


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for command in ("shell", "run", "runs", "show", "ioc"):
        assert re.search(rf"^\s+{command}\s", out, re.M), command


COMMANDS = ("shell", "run", "runs", "show", "ioc", "serve", "index", "queue")


@pytest.mark.parametrize("columns", ["80", "200", "60"])
def test_help_fits_the_terminal_and_its_summaries_are_whole(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    width = min(int(columns), 80)
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= width, out
    listed = [line.split(None, 1) for line in out[out.index("Commands:") :].splitlines()[1:]]
    summaries = {words[0]: words[1] for words in listed if words[0] in COMMANDS}
    assert sorted(summaries) == sorted(COMMANDS)
    if width == 80:  # one line each, a whole sentence: nothing wrapped or cut
        assert len(listed) == len(COMMANDS), out
        for command, summary in summaries.items():
            assert summary.endswith(".") and not summary.endswith(".."), (command, summary)
            assert not summary.endswith(("e.g.", "i.e.")), (command, summary)
    for command in COMMANDS:
        assert main([command, "--help"]) == EXIT_OK
        out = capsys.readouterr().out
        assert max(map(len, out.splitlines())) <= width, (command, out)
        assert "..." not in out.replace("[ARGS]...", ""), (command, out)


def test_run_stores_the_run_and_show_prints_it(store, capsys, tmp_path):
    assert main(["run", "scan([det], m1, -1, 1, 5)", "--sim", "--md", "sample=Si"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "ended: success" in out and str(store) in out
    run = Catalog(store)[-1]
    assert run.metadata["start"]["sample"] == "Si"
    assert list(run.primary.read()["m1"].values) == [-1, -0.5, 0, 0.5, 1]

    assert main(["runs"]) == EXIT_OK
    listing = capsys.readouterr().out
    assert run.uid[:8] in listing and "success" in listing

    png = tmp_path / "plot.png"
    assert main(["show", "-1", "--plot", str(png)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert run.uid in shown and "606.53" in shown
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["show", run.uid[:6]]) == EXIT_OK


def test_a_failing_plan_exits_1_and_is_stored_as_failed(store, capsys):
    plan = "bpp.pchain(bps.open_run(), bps.null(), iter([1]))"
    assert main(["run", plan, "--sim"]) == EXIT_FAILED
    assert "error: the plan failed: TypeError" in capsys.readouterr().out
    assert Catalog(store)[-1].metadata["stop"]["exit_status"] == "fail"
    # failing after its run closed: the run is a success, the command is not
    assert main(["run", "bpp.pchain(count([det]), iter([1]))", "--sim"]) == EXIT_FAILED
    assert Catalog(store)[-1].metadata["stop"]["exit_status"] == "success"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "scan([dett], m1, 0, 1, 2)", "--sim"], "name 'dett' is not defined"),
        (["run", "scan([det], m1,", "--sim"], "is not Python"),
        (["run", "1 + 1", "--sim"], "not a plan"),
        (["run", "count([det])", "--sim", "--md", "novalue"], "KEY=VALUE"),
        (["run", "count([det])", "--sim", "--md", "uid=../x"], "sets 'uid' itself"),
        (["run", "count([det])", "--sim", "--md", "time=yesterday"], "sets 'time' itself"),
        (["show", "99"], "no run '99' in {store} (neither a scan_id nor a uid)"),
        (["show", "abc"], "no run 'abc' in {store} (no uid starts with it)"),
        (["show", "-5"], "no run '-5' in {store} (it holds 1 run)"),
        (["show", "1", "--plot", "p.png", "-y", "nope"], "has no field 'nope'; its fields: "),
        (["ioc", "laser"], "unknown IOC 'laser'"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(store, capsys, argv, message):
    main(["run", "count([det])", "--sim"])  # a store with one run in it
    capsys.readouterr()
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message.format(store=store) in err
    assert "Traceback" not in err
    if argv[0] != "frobnicate":  # click's own usage errors come with the usage
        (line,) = err.splitlines()  # one line, saying it once: no type name before it
        assert line.startswith("error: ") and "Error: " not in line, line
        assert line.lower().count("no run") <= 1 and line.count(str(store)) <= 1, line


def test_a_missing_store_is_a_clear_error(tmp_path, capsys):
    assert main(["runs", "--store", str(tmp_path / "nowhere")]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: no run store at")


def test_debug_shows_the_traceback(store):
    main(["run", "count([det])", "--sim"])
    with pytest.raises(LookupError):
        main(["--debug", "show", "99"])


def test_show_takes_a_uid_start_made_only_of_digits(store, tmp_path):
    from runengine.cli.runs import find_run

    class Catalog:  # uids are hex: a start of all digits is a uid start as well as a scan_id
        directory = tmp_path
        runs = {"3262569a-0000": "the run", "3262a1b2-0000": "another"}

        def __len__(self):
            return len(self.runs)

        def __iter__(self):
            return iter(self.runs)

        def __getitem__(self, key):
            if isinstance(key, int):
                raise KeyError(f"No run with scan_id {key}")
            found = [v for k, v in self.runs.items() if k.startswith(key)]
            if len(found) > 1:
                raise KeyError(f"uid prefix {key!r} is ambiguous: it matches {found}")
            if not found:
                raise KeyError(f"No run {key!r}")
            return found[0]

    assert find_run(Catalog(), "326256") == "the run"
    with pytest.raises(LookupError, match=r"^no run '-1' in .* \(it holds 2 runs\)$"):
        find_run(Catalog(), "-1")
    with pytest.raises(LookupError, match=r"^no run '4' in .* \(neither a scan_id nor a uid\)$"):
        find_run(Catalog(), "4")
    with pytest.raises(LookupError, match=r"^uid prefix '3262' is ambiguous"):
        find_run(Catalog(), "3262")


def test_make_plan_names_what_the_session_has():
    with pytest.raises(ValueError, match=r"devices here: det, m1"):
        make_plan("count([nope])", {"_devices": {"det": 1, "m1": 2}, "count": print})


def _answers(*replies):
    replies = list(replies)
    return lambda prompt: replies.pop(0)


def test_run_asks_what_to_do_when_paused(store, monkeypatch):
    from runengine.cli.runner import run_plan
    from runengine.cli.session import Session

    with Session(sim=True, table=False, store=store) as session:
        RE = session.RE
        RE.subscribe(lambda name, doc: RE.request_pause() if doc["seq_num"] == 2 else None, "event")
        said = []
        outcome = run_plan(session, "scan([det], m1, -1, 1, 5)", _answers("x", "a"), said.append)
    assert outcome.exit_status == "abort"
    assert "Please answer r, s, a or h." in said
    assert Catalog(store)[-1].metadata["stop"]["exit_status"] == "abort"
    assert EXIT_ABORTED == 3


def test_resume_from_the_prompt_completes_every_point_once(store):
    from runengine.cli.runner import run_plan
    from runengine.cli.session import Session

    with Session(sim=True, table=False, store=store) as session:
        RE = session.RE
        RE.subscribe(lambda name, doc: RE.request_pause() if doc["seq_num"] == 2 else None, "event")
        outcome = run_plan(session, "scan([det], m1, -1, 1, 5)", _answers("r"), print)
    assert outcome.exit_status == "success"
    table = Catalog(store)[-1].primary.read()
    assert list(table["seq_num"].values) == [1, 2, 3, 4, 5]


@pytest.mark.integration
def test_ioc_runs_one_ioc_in_the_foreground_until_ctrl_c():
    """It serves, logs at INFO, and says once (no traceback) that nobody hears its beacons."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runengine.cli.main", "ioc", "temperature", "--prefix", "fg:"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))
        env = {**os.environ, **client_env([port])}
        read = subprocess.run(
            [sys.executable, "-m", "caproto.commandline.get", "--no-repeater", "fg:RBV"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "fg:RBV" in read.stdout and "295" in read.stdout, read.stdout + read.stderr
        time.sleep(1.0)  # caproto beacons every few tenths of a second at first
    finally:
        proc.send_signal(signal.SIGINT)
        log, _ = proc.communicate(timeout=10)  # caproto logs to stdout
    assert proc.returncode == 0
    assert "Traceback" not in log and "DEBUG" not in log, log
    assert log.count("No beacon listener") == 1, log
    assert "[I " in log and "Server startup complete" in log  # caproto's INFO lines


def test_a_startup_file_adds_its_names_to_the_session(store, tmp_path, capsys):
    startup = tmp_path / "startup.py"
    startup.write_text(
        "from ophyd.sim import SynGauss\n"
        "bump = SynGauss('bump', m1, 'm1', center=0, Imax=5, sigma=1)\n"
    )
    assert main(["run", "scan([bump], m1, -1, 1, 3)", "--sim", "--startup", str(startup)]) == 0
    assert "bump" in Catalog(store)[-1].primary.read()
    assert main(["run", "count([det])", "--sim", "--startup", str(tmp_path / "no.py")]) == 2
    assert "startup file" in capsys.readouterr().err


@pytest.mark.integration
def test_run_over_the_simulated_beamline(store, capsys):
    assert main(["run", "scan([det], m1, -0.5, 0.5, 3)", "--no-table"]) == EXIT_OK
    data = Catalog(store)[-1].primary.read()
    assert list(data["m1"].values) == pytest.approx([-0.5, 0, 0.5], abs=1e-3)
    assert data["det"].values[1] > data["det"].values[0]  # the IOC's peak is at m1 = 0


def test_scan_id_carries_over_between_runs_and_show_says_when_two_share_one(store, capsys):
    for _ in range(2):
        assert main(["run", "count([det])", "--sim", "--no-table"]) == EXIT_OK
    assert [run.metadata["start"]["scan_id"] for run in Catalog(store).values()] == [1, 2]
    (store / ".metadata").unlink()  # as a store written before RE.md was kept
    assert main(["run", "count([det])", "--sim", "--no-table", "--md", "sample=Si"]) == EXIT_OK
    runs = list(Catalog(store).values())
    assert [run.metadata["start"]["scan_id"] for run in runs] == [1, 2, 1]
    assert runs[2].metadata["start"]["sample"] == "Si"  # --md is this run's, not kept
    capsys.readouterr()
    assert main(["show", "1"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "2 runs have scan_id 1; this is the newest" in out and runs[0].uid[:8] in out
    assert runs[2].uid in out
    assert main(["show", "2"]) == EXIT_OK
    assert "runs have scan_id" not in capsys.readouterr().out
    assert main(["run", "count([det])", "--sim", "--no-table"]) == EXIT_OK
    last = Catalog(store)[-1].metadata["start"]
    assert last["scan_id"] == 2 and "sample" not in last  # the file was made again
