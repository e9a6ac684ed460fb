"""An engine's message commands: the built-in ones, its extensions' and those users register.

A built-in handler is ``handler(call, msg)``, bound to each call's
:class:`~runengine.call.CallContext` when the call first sends the command; a user's is
``func(msg)``, as in bluesky (``RE.register_command``), and wins over a built-in of the same
name. An extension's commands load on first use (:mod:`runengine.extensions`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from bluesky.utils import Msg

from .commands.spec import BUILTIN_COMMANDS
from .eager import start
from .extensions import CLAIMED, Extension
from .extensions import load as load_extension
from .extensions import on_call as on_call_of

__all__ = ["CommandTable"]

#: (handler, plain, built-in): plain handlers return at once (or ``eager.start(...)``);
#: the others are coroutine functions. A built-in takes the call context first.
Entry = tuple[Callable, bool, bool]


def _is_async(func: Callable) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async __call__ objects
    )


class _OnTheCurrentCall:
    """A built-in handler as bluesky's ``RE._command_registry`` shows it: ``func(msg)``,
    run on the engine's current call (outside a call there is none: RuntimeError)."""

    def __init__(self, engine: Any, func: Callable) -> None:
        self.engine, self.func = engine, func
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", "handler")

    def __call__(self, msg: Msg) -> Any:
        call = self.engine._exec
        if call is None:
            raise RuntimeError(f"Msg({msg.command!r}) can only be handled during a call")
        result = self.func(call, msg)
        return start(result) if inspect.iscoroutine(result) else result


class CommandTable:
    """The commands of one engine, by name."""

    def __init__(self, engine: Any, extensions: Iterable[Extension]) -> None:
        self._engine = engine
        extensions = list(extensions)
        self._entries: dict[str, Entry] = {
            name: (func, not _is_async(func), True)
            for name, func in BUILTIN_COMMANDS.items()
            if name not in CLAIMED  # an extension's: this engine's only if it has the extension
        }
        # The extensions' commands: bound the first time a plan sends one (importing the
        # extension's module then, if no engine did).
        self._pending: dict[str, Extension] = {
            name: extension for extension in extensions for name in extension.commands
        }
        # Called as each call starts; loaded at the first call.
        self._on_call_pending = [e for e in extensions if e.on_call is not None]
        self._on_call: list[Callable[[Any], Any]] = []

    def lookup(self, name: str) -> Entry | None:
        """The entry of ``name``, loading its extension now if needed; None if unknown."""
        entry = self._entries.get(name)
        if entry is None and name in self._pending:
            self._load(self._pending[name])
            entry = self._entries.get(name)
        return entry

    def call_started(self, call: Any) -> None:
        """Tell the extensions that asked (``Extension.on_call``) that ``call`` starts."""
        while self._on_call_pending:
            extension = self._on_call_pending.pop(0)
            self._load(extension)
            func = on_call_of(extension)
            if func is not None:
                self._on_call.append(func)
        for func in self._on_call:
            func(call)

    def _load(self, extension: Extension) -> None:
        for name, func in load_extension(extension).items():
            if self._pending.pop(name, None) is not None:
                self._entries[name] = (func, not _is_async(func), True)
                self._changed(name)

    def _load_all(self) -> None:
        while self._pending:
            self._load(next(iter(self._pending.values())))

    def register(self, name: str, func: Callable) -> None:
        """Handle ``Msg(name)`` with the user's ``func(msg)`` (plain or async)."""
        if not callable(func):
            raise ValueError(f"The command handler for {name!r} must be callable, not {func!r}")
        self._pending.pop(name, None)  # the user's wins over an extension's, loaded or not
        if _is_async(func):
            self._entries[name] = (func, False, False)
        else:

            def call(msg: Msg, _func: Callable = func) -> Any:
                result = _func(msg)
                return start(result) if inspect.iscoroutine(result) else result

            call.__doc__ = func.__doc__
            self._entries[name] = (call, True, False)
        self._changed(name)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (ignored if unknown)."""
        self._entries.pop(name, None)
        self._pending.pop(name, None)
        self._changed(name)

    def _changed(self, name: str) -> None:
        call = self._engine._exec
        if call is not None:
            call.forget_command(name)

    def names(self) -> list[str]:
        """Every command's name, extensions' included (they load now)."""
        self._load_all()
        return list(self._entries)

    def as_registry(self) -> dict[str, Callable]:
        """``{name: func(msg)}``, as bluesky's ``RE._command_registry``."""
        self._load_all()
        return {
            name: func if not builtin else _OnTheCurrentCall(self._engine, func)
            for name, (func, _, builtin) in self._entries.items()
        }

    def describe(self, verbose: bool = False) -> str:
        """Every command with (the first line of) its handler's docstring."""
        text = "List of available commands\n"
        for name, func in self.as_registry().items():
            doc = func.__doc__ or ""
            text += f"{name} : {doc if verbose else doc.split(chr(10))[0]}\n"
        return text
