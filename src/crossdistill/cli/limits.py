"""Bounds of the numeric command-line options, checked before any work and shown in ``--help``.

One table (:data:`LIMITS`) says, per sub-command and option, the allowed range. The
parser builder calls :func:`annotate` to append the range to each option's help text, and
the CLI calls :func:`check_args` on the parsed options before the command runs: a value
out of range, or any float option that is NaN or infinite, is one line on stderr and
exit code 2 (an :class:`~crossdistill.errors.InputError`), before anything is loaded,
allocated or written.

Why these bounds: scales live in [0, 2] (0 finest, 2 coarsest); the upper bounds of
sizes and counts are about 10x beyond the defaults and keep one object's buffers within
a few GB (``views x size^2`` is also capped at :data:`MAX_PIXELS` rendered pixels); seeds
are what numpy's generators accept.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import dataclass

from crossdistill.errors import InputError

__all__ = ["Bound", "LIMITS", "MAX_PIXELS", "annotate", "check_args"]

SEED_MAX = 2**32 - 1
#: Most pixels one object may be rendered to (views x size x size): 36 views of 1024 x 1024.
MAX_PIXELS = 36 * 1024 * 1024


@dataclass(frozen=True)
class Bound:
    """Allowed range of one option: ``lo <= value <= hi`` (``lo_open``: ``lo < value``)."""

    lo: float
    hi: float
    lo_open: bool = False
    why: str = ""

    def ok(self, v: float) -> bool:
        return (v > self.lo if self.lo_open else v >= self.lo) and v <= self.hi

    def text(self) -> str:
        lo = f"{self.lo:g}"
        hi = f"{self.hi:g}" if self.hi < 1e6 else f"{int(self.hi)}"
        return f"> {lo} and <= {hi}" if self.lo_open else f"{lo}..{hi}"


def _seed() -> Bound:
    return Bound(0, SEED_MAX)


_SCALE = Bound(0.0, 2.0, why="scales live in [0, 2]: 0 finest, 2 coarsest")

#: sub-command (as typed after ``crossdistill``) -> option dest -> bound.
LIMITS: dict[str, dict[str, Bound]] = {
    "segment": {"points": Bound(100, 200_000), "views": Bound(6, 360), "size": Bound(32, 2048),
                "iterations": Bound(20, 100_000, why="fewer steps do not train the grouping field"),
                "scales": _SCALE, "seed": _seed(), "workers": Bound(1, 256)},
    "render": {"points": Bound(1, 2_000_000), "views": Bound(1, 360), "size": Bound(16, 2048), "seed": _seed()},
    "select": {"scale": _SCALE, "face": Bound(0, 2**31 - 1), "radius": Bound(0.0, 100.0, lo_open=True)},
    "name": {"scale": _SCALE, "views": Bound(1, 12), "size": Bound(32, 1024),
             "timeout": Bound(0.0, 3600.0, lo_open=True)},
    "pretrain": {"points": Bound(64, 200_000), "views": Bound(6, 360), "size": Bound(32, 1024),
                 "steps": Bound(1, 1_000_000), "batch": Bound(1, 256), "width": Bound(4, 1024), "seed": _seed()},
    "eval": {"limit": Bound(1, 10_000_000), "per_category": Bound(0, 100_000)},
    "distill partdistill": {"views": Bound(1, 360), "size": Bound(32, 1024), "min_score": Bound(0.0, 1.0),
                            "iterations": Bound(1, 1_000_000), "points": Bound(64, 200_000),
                            "teacher_iterations": Bound(1, 1_000_000), "backward_rounds": Bound(0, 100),
                            "teacher_candidates": Bound(0.0, 1.0), "backward_refine": Bound(0.0, 1.0),
                            "seed": _seed()},
    "distill lidar": {"iterations": Bound(1, 1_000_000), "teacher_iterations": Bound(1, 1_000_000),
                      "voxel_size": Bound(0.01, 10.0, why="metres"), "seed": _seed()},
    "discover": {"k": Bound(2, 12, why="the part decoder has 12 part queries"), "rounds": Bound(1, 20),
                 "steps": Bound(1, 1_000_000), "final_steps": Bound(0, 1_000_000), "grid": Bound(8, 128),
                 "max_side": Bound(32, 4096), "seed": _seed()},
}

#: sub-commands whose ``views`` x ``size``^2 is rendered per object.
_RENDERED = ("segment", "render", "pretrain")


def _subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    """(command path, parser) of every sub-command under ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                yield path, sub
                yield from _subparsers(sub, path)


#: sub-command -> option dest -> the flag to name in errors (its first long spelling, not an older alias)
_FLAGS: dict[str, dict[str, str]] = {}


def annotate(parser: argparse.ArgumentParser) -> None:
    """Append the allowed range of every bounded option to its help text, and remember
    which sub-command each parser's ``func`` belongs to (for :func:`check_args`)."""
    for path, sub in _subparsers(parser):
        func = sub._defaults.get("func")
        if func is not None:
            sub.set_defaults(_command_path=path)
        _FLAGS[path] = {a.dest: next((o for o in a.option_strings if o.startswith("--")), a.option_strings[0])
                        for a in sub._actions if a.option_strings}
        for action in sub._actions:
            bound = LIMITS.get(path, {}).get(action.dest)
            if bound is None or action.help in (None, argparse.SUPPRESS):
                continue
            note = f"allowed: {bound.text()}" + (f"; {bound.why}" if bound.why else "")
            action.help = f"{action.help} ({note})" if action.help else note
        if path in _RENDERED and sub.epilog is None:
            sub.epilog = f"views x size^2 may be at most {MAX_PIXELS // 2**20} Mi pixels per object."


def _values(value) -> Iterable:
    return value if isinstance(value, (list, tuple)) else [value]


def check_args(args: argparse.Namespace) -> None:
    """Raise a one-line :class:`InputError` for an option outside :data:`LIMITS` or a non-finite float."""
    path = getattr(args, "_command_path", None)
    bounds = LIMITS.get(path or "", {})
    for dest, value in sorted(vars(args).items()):
        if dest.startswith("_") or value is None or isinstance(value, (bool, str)):
            continue
        flag = _FLAGS.get(path or "", {}).get(dest) or "--" + dest.replace("_", "-")
        for v in _values(value):
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{flag} must be a finite number (got {v})")
            bound = bounds.get(dest)
            if bound is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and not bound.ok(v):
                why = f" ({bound.why})" if bound.why else ""
                raise InputError(f"{flag} must be {'in ' if not bound.lo_open else ''}{bound.text()}{why} "
                                 f"(got {v:g})")
    if path in _RENDERED and isinstance(getattr(args, "views", None), int) and isinstance(
            getattr(args, "size", None), int):
        pixels = args.views * args.size * args.size
        if pixels > MAX_PIXELS:
            raise InputError(f"--views {args.views} x --size {args.size}^2 is {pixels / 2**20:.0f} Mi pixels per "
                             f"object; at most {MAX_PIXELS // 2**20} Mi (fewer views or a smaller --size)")
