"""The seam: the core imports no feature, and features load the first time a plan uses them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bluesky.utils import InvalidCommand, Msg

from runengine import RunEngine
from runengine.extensions import DEFAULT_EXTENSIONS, Extension, ExtensionError, load

PACKAGE = Path(__file__).resolve().parents[2] / "runengine"

# What runs plans; everything else under runengine/ is a feature or a client of the engine.
CORE = [
    "__init__.py", "engine.py", "execution.py", "states.py", "control.py", "stepper.py",
    "documents.py", "descriptors.py", "assets.py", "statuses.py", "eager.py", "loop.py",
    "console.py", "sigint.py", "suspension.py", "surface.py", "extensions.py", "errors.py",
    "call.py", "command_table.py",
    "compat/__init__.py", "compat/_context.py", "compat/_patches.py", "compat/_suspenders.py",
    "commands/__init__.py", "commands/spec.py", "commands/devices.py", "commands/flow.py",
    "commands/flyers.py", "commands/runs.py",
]  # fmt: skip
FEATURES = ["agents", "graph", "heartbeats", "locks", "scaleout", "scripts", "suspenders"]
HANDLERS = [
    "commands",
    "graph",
    "locks",
    "scripts",
]  # what handles messages: through the call context only


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as a dotted name under runengine."""
    tree = ast.parse(path.read_text())
    package = ["runengine", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_feature(module):
    imported = _imported_modules(PACKAGE / module)
    for feature in FEATURES:
        name = f"runengine.{feature}"
        bad = sorted(m for m in imported if m == name or m.startswith(name + "."))
        assert not bad, f"runengine/{module} imports the feature {bad}"


def test_every_module_is_core_or_a_feature():
    """A new module says which it is here, so the import contract covers it."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        dotted = rel.removesuffix(".py").replace("/", ".")
        feature = any(dotted == f or dotted.startswith(f + ".") for f in FEATURES)
        assert rel in CORE or feature, f"runengine/{rel}: add it to CORE or FEATURES"


@pytest.mark.parametrize("folder", HANDLERS)
def test_handlers_reach_the_engine_through_its_public_surface_only(folder):
    """``call.engine.md`` is fine; ``call.engine._anything`` or ``RE._exec`` is not."""
    bad = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
                continue
            if node.attr.startswith("__"):
                continue
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in ("engine", "RE", "re"):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}.{node.attr}")
    assert not bad, bad


def test_a_builtin_handler_gets_the_running_calls_context():
    from runengine.call import CallContext

    seen = []
    RE = RunEngine({}, context_managers=[])
    RE.msg_hook = lambda msg: seen.append(RE._exec)
    RE([Msg("null"), Msg("checkpoint")])
    call = seen[0]
    assert isinstance(call, CallContext) and seen == [call, call]
    assert call.handlers["null"].__self__ is call  # bound to this call, on first use
    assert set(call.handlers) == {"null", "checkpoint"}  # the call bound only what it used


def _in_a_fresh_process(code: str, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.splitlines()[-1])


def test_a_fresh_engine_loads_no_feature_until_a_plan_uses_one():
    result = _in_a_fresh_process(
        "import json, sys\n"
        "from bluesky.utils import Msg\n"
        "from runengine import RunEngine\n"
        "RE = RunEngine({}, context_managers=[])\n"
        "RE([Msg('open_run'), Msg('close_run')])\n"
        "before = sorted(m for m in sys.modules if m.startswith('runengine'))\n"
        "from runengine.graph import ActionGraph\n"
        "RE([Msg('run_graph', ActionGraph())])\n"
        "after = sorted(m for m in sys.modules if m.startswith('runengine'))\n"
        "print(json.dumps({'before': before, 'after': after}))\n"
    )
    features = [f"runengine.{f}" for f in FEATURES]
    assert not [m for m in result["before"] if any(m.startswith(f) for f in features)]
    assert "runengine.graph.commands" in result["after"]
    assert "runengine.scripts.commands" not in result["after"]  # only what was used


@pytest.mark.parametrize("extension", DEFAULT_EXTENSIONS, ids=lambda e: e.name)
def test_each_extension_registers_exactly_the_commands_it_declares(extension):
    result = _in_a_fresh_process(
        "import importlib, json\n"
        "from runengine.commands.spec import BUILTIN_COMMANDS\n"
        "before = set(BUILTIN_COMMANDS)\n"
        f"importlib.import_module({extension.module!r})\n"
        "print(json.dumps(sorted(set(BUILTIN_COMMANDS) - before)))\n"
    )
    assert result == sorted(extension.commands)


def test_every_command_is_listed_and_ours_win_over_an_extensions():
    RE = RunEngine({}, context_managers=[])
    RE.register_command("run_script", lambda msg: "mine")
    names = RE.commands  # loads every extension
    for extension in DEFAULT_EXTENSIONS:
        assert set(extension.commands) <= set(names)
    assert RE([Msg("run_script", None)]) == ()  # ran ours: it returns no uids
    assert RE._command_registry["run_script"](Msg("run_script")) == "mine"
    RE.unregister_command("acquire_lock")
    with pytest.raises(InvalidCommand):
        RE([Msg("acquire_lock", None)])


def test_an_engine_without_an_extension_lacks_its_commands_even_once_loaded_elsewhere():
    with_graphs = RunEngine({}, context_managers=[])
    assert "run_graph" in with_graphs.commands  # imports the graphs' module in this process
    names = [e.name for e in DEFAULT_EXTENSIONS]
    without = RunEngine(
        {}, context_managers=[], extensions=DEFAULT_EXTENSIONS[names.index("locks") :]
    )
    assert "run_graph" not in without.commands and "acquire_lock" in without.commands
    with pytest.raises(InvalidCommand):
        without([Msg("run_graph", None)])


def test_an_extension_that_forgets_a_command_is_an_error():
    wrong = Extension("wrong", "runengine.commands.flow", ("no_such_command",))
    with pytest.raises(ExtensionError, match="no_such_command"):
        load(wrong)


FIRST_USE = """
import json, sys
from bluesky.utils import Msg
from runengine import RunEngine
from runengine.locks import HardwareLock

def lock_plan():
    token = yield Msg("acquire_lock", HardwareLock("stage"), job="first use", timeout=1.0)
    yield Msg("release_lock", token)
    return token.job

def outcome(RE, command):
    plan = lock_plan() if command == "acquire_lock" else [Msg(command)]
    try:
        return f"returned {RE(plan)!r}"
    except Exception as err:
        return f"raised {type(err).__name__}"

command = sys.argv[1]
fresh = outcome(RunEngine({}, context_managers=[]), command)  # loads the extension now
print(json.dumps([fresh, outcome(RunEngine({}, context_managers=[]), command)]))
"""


@pytest.mark.parametrize("command", [c for e in DEFAULT_EXTENSIONS for c in e.commands])
def test_a_commands_first_use_in_a_process_is_as_once_loaded(command):
    """Plain or async, an extension's handler is called the same way when the message that
    imports its module is the one it handles (a fresh process: nothing imported yet)."""
    first, later = _in_a_fresh_process(FIRST_USE, command)
    assert first == later
    assert "AttributeError" not in first


def test_the_type_checker_checks_exactly_the_core():
    """setup.cfg's [mypy] files are the CORE above (a folder stands for its modules)."""
    import configparser

    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    checked = set()
    for entry in config["mypy"]["files"].replace("\n", " ").split(","):
        path = PACKAGE.parent / entry.strip()
        found = path.rglob("*.py") if path.is_dir() else [path]
        checked.update(p.relative_to(PACKAGE).as_posix() for p in found)
    assert checked == set(CORE)
