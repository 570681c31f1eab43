"""Errors a user can act on.

Anything raised as :class:`InputError` is reported by the CLI as one line on stderr
with exit code 2 and no traceback (``--debug`` shows the traceback).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: missing, empty, corrupt, degenerate or wrong-format data."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM); unwinds like Ctrl-C so that every cleanup runs."""


class MissingDependencyError(ImportError):
    """An optional dependency is needed for this feature; the message names the extra."""


def require(module: str, extra: str, feature: str):
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra.

    Example:
        >>> np = require("numpy", "core", "arrays")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{feature} needs the optional dependency '{module}': pip install 'crossdistill[{extra}]'"
        ) from exc
