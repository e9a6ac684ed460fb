"""One exception hierarchy (see :mod:`runengine.errors`).

Every module of the project is imported and every exception class it defines is checked:
it derives from :class:`RunEngineError`, from the builtin (or bluesky) exception it means,
and from its feature's one root (``ROOTS``). A new exception class anywhere is held to the
same rules without editing this file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import click
import pytest
from bluesky.utils import FailedPause, IllegalMessageSequence, RequestAbort

import runengine
from runengine import RunEngineError

#: The project: the engine package, and the folders mapped into it (setup.cfg package_dir).
PACKAGES = ("runengine", "runengine.plans", "runengine.devices", "runengine.callbacks",
            "runengine.cli")  # fmt: skip

#: Each feature's one root: ``package or module -> (module defining the root, its name)``. A
#: module under none of them (the core, its commands, the plans, the agents) has
#: RunEngineError itself as its root.
ROOTS = {
    "runengine.graph": ("runengine.graph.result", "GraphError"),
    "runengine.locks": ("runengine.locks.token", "LockError"),
    "runengine.scripts": ("runengine.scripts.results", "ScriptError"),
    "runengine.scaleout": ("runengine.scaleout.connection", "ScaleoutError"),
    "runengine.extensions": ("runengine.extensions", "ExtensionError"),
    "runengine.callbacks": ("runengine.callbacks.store", "StoreError"),
    "runengine.cli": ("runengine.cli.errors", "CLIError"),
    "runengine.devices": ("runengine.devices.errors", "DeviceError"),
}

#: The library exceptions a class of ours may specialise instead of a builtin: bluesky's,
#: thrown into plans as bluesky throws them, and click's, which the command line is made of.
LIBRARIES = ("bluesky", "click")

#: Classes with no builtin to specialise. RunEngineError is the root; PlanFinished is the
#: stepper's signal to the message loop that the plan returned, caught there and never seen
#: outside: StopIteration would be its builtin, but the stepper reads a StopIteration as a
#: plan's return, and PEP 479 turns one crossing a generator or coroutine into RuntimeError.
NO_BUILTIN = {"runengine.errors.RunEngineError", "runengine.stepper.PlanFinished"}

#: Not Exceptions at all, so they cannot derive from RunEngineError (an Exception): a new one
#: must be justified here. PromptRequested is a KeyboardInterrupt, which ``except Exception``
#: must not catch.
NOT_EXCEPTIONS = {"runengine.sigint.PromptRequested"}

#: Builtins that ``except`` clauses (ours and our users') rely on: adding roots kept them.
KEPT = {
    "runengine.control.EngineBusy": TimeoutError,
    "runengine.commands.spec.UnsupportedObject": (TypeError, AssertionError),
    "runengine.commands.spec.MissingArgument": (ValueError, AssertionError),
    "runengine.commands.flyers.StreamDeclarationError": (IllegalMessageSequence, AssertionError),
    "runengine.execution.PauseWithoutCheckpoint": (FailedPause, RequestAbort),
    "runengine.cli.errors.CLIError": click.ClickException,
    "runengine.extensions.ExtensionError": ImportError,
    "runengine.graph.result.GraphCycleError": ValueError,
    "runengine.graph.result.ActionTimeout": TimeoutError,
    "runengine.graph.result.GraphTimeout": TimeoutError,
    "runengine.locks.token.LockError": RuntimeError,
    "runengine.locks.token.LockTimeout": TimeoutError,
    "runengine.scripts.results.ScriptNotFound": FileNotFoundError,
    "runengine.scripts.results.ScriptNotExecutable": PermissionError,
    "runengine.scripts.results.LockUnavailable": TimeoutError,
    "runengine.scaleout.connection.BackendUnavailable": ConnectionError,
    "runengine.scaleout.lock.LockBackendUnavailable": ConnectionError,
    "runengine.scaleout.redis_server.RedisServerError": RuntimeError,
    "runengine.cli.queue.manager.QueueError": RuntimeError,
    "runengine.callbacks.store.StoreError": OSError,
    "runengine.callbacks.records.CorruptRunError": ValueError,
    "runengine.devices.beamline.DeviceConnectionError": ConnectionError,
    "runengine.devices.launcher.IOCStartError": RuntimeError,
    "runengine.devices.ioc._common.InjectedFault": RuntimeError,
}


def _raise(name: str) -> None:
    raise ImportError(f"cannot import {name}")


#: Modules whose import is an action by design, not imported here: the queueserver worker's
#: startup module builds the worker's namespace (and starts the IOCs) when imported.
ACTIONS = {"runengine.cli.queue.startup"}


def modules() -> list[str]:
    """Every module of the project, imported (but the :data:`ACTIONS`)."""
    names = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        found = pkgutil.walk_packages(path, package + ".", _raise)
        names += [info.name for info in found if info.name not in ACTIONS]
    for name in names:
        importlib.import_module(name)
    return sorted(set(names))


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class the project defines, by dotted name (warnings are categories,
    not errors: left out)."""
    found = {}
    for module in modules():
        for obj in vars(sys.modules[module]).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and not issubclass(obj, Warning)
                and obj.__module__.split(".")[0] == "runengine"
            ):
                found[_name(obj)] = obj
    return dict(sorted(found.items()))


CLASSES = exception_classes()
EXCEPTIONS = {name: cls for name, cls in CLASSES.items() if name not in NOT_EXCEPTIONS}


def root_of(module: str) -> tuple[str, str]:
    """``(module, name)`` of the root of the feature ``module`` belongs to."""
    best = ("runengine.errors", "RunEngineError")
    length = 0
    for prefix, root in ROOTS.items():
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
            best, length = root, len(prefix)
    return best


def _maybe_root(module: str, name: str) -> type | None:
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        return None
    return found if isinstance(found, type) else None


def _root(module: str, name: str) -> type:
    root = _maybe_root(module, name)
    assert root is not None, f"{module} defines no {name}"
    return root


def test_every_module_is_found():
    found = modules()
    for expected in ("runengine.errors", "runengine.engine", "runengine.commands.spec",
                     "runengine.cli.queue.profile", "runengine.plans.scripts",
                     "runengine.devices.ioc._common", "runengine.callbacks.store",
                     "runengine.cli.main"):  # fmt: skip
        assert expected in found
    assert len(CLASSES) > 30


def test_run_engine_error_is_the_one_project_root():
    assert RunEngineError.__bases__ == (Exception,)
    assert runengine.RunEngineError is RunEngineError and "RunEngineError" in runengine.__all__


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_derives_from_the_project_root(name):
    assert issubclass(EXCEPTIONS[name], RunEngineError), f"{name} is no RunEngineError"


def _specialises(cls: type) -> list[type]:
    """The builtin or library exceptions ``cls`` is, beside Exception and BaseException."""
    return [
        base
        for base in cls.__mro__
        if issubclass(base, BaseException)
        and base not in (Exception, BaseException)
        and (base.__module__ == "builtins" or base.__module__.split(".")[0] in LIBRARIES)
    ]


@pytest.mark.parametrize("name", [name for name in CLASSES if name not in NO_BUILTIN])
def test_derives_from_the_builtin_it_means(name):
    assert _specialises(CLASSES[name]), f"{name} is only an Exception: which builtin is it?"


FEATURES = [n for n, cls in EXCEPTIONS.items() if root_of(cls.__module__)[1] != "RunEngineError"]


@pytest.mark.parametrize("name", FEATURES)
def test_derives_from_its_feature_root(name):
    module, root_name = root_of(EXCEPTIONS[name].__module__)
    root = _root(module, root_name)
    assert issubclass(EXCEPTIONS[name], root), f"{name} is no {root_name} ({module})"


@pytest.mark.parametrize("prefix", ROOTS)
def test_each_feature_has_one_root(prefix):
    """The root is a RunEngineError and a builtin, lives in its feature, and is no other root."""
    module, name = ROOTS[prefix]
    root = _root(module, name)
    assert root.__module__ == module and root_of(module) == (module, name)
    assert issubclass(root, RunEngineError) and _specialises(root)
    others = [_maybe_root(*ROOTS[other]) for other in ROOTS if other != prefix]
    assert not [other for other in others if other and issubclass(root, other)]


def test_names_mean_one_thing():
    by_name: dict[str, list[str]] = {}
    for name, cls in CLASSES.items():
        by_name.setdefault(cls.__name__, []).append(name)
    assert {n: where for n, where in by_name.items() if len(where) > 1} == {}


def test_what_is_not_an_exception_is_justified():
    assert {n for n, cls in CLASSES.items() if not issubclass(cls, Exception)} == NOT_EXCEPTIONS
    for name in NOT_EXCEPTIONS:
        assert _specialises(CLASSES[name]) and not issubclass(CLASSES[name], RunEngineError)


@pytest.mark.parametrize("name", KEPT)
def test_except_clauses_keep_working(name):
    assert name in CLASSES, f"{name} is gone: update KEPT"
    assert issubclass(CLASSES[name], KEPT[name])
