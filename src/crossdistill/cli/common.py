"""What every sub-command shares: global flags accepted anywhere, examples in every help, one help
format, a checked ``--device``, the line naming the teacher that ran, and quiet libraries.

:func:`finish_parser` walks the built parser once (after every sub-command registered itself):

* ``--debug`` and ``--quiet`` are accepted before or after the sub-command (``crossdistill --quiet
  segment ...`` = ``crossdistill segment ... --quiet``): every sub-parser gets both, with a
  suppressed default so the top-level value is not overwritten;
* every ``--device`` gets one help text (:data:`~crossdistill.engine.devices.DEVICE_HELP`);
* every sub-command gets its examples (:data:`EXAMPLES`) as its help epilog, printed as written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from crossdistill.engine.quiet import quiet_libraries  # re-exported for the commands

__all__ = ["EXAMPLES", "HelpFormatter", "finish_parser", "say_teacher", "quiet_libraries", "alias_note"]

#: sub-command path -> example command lines (shown under "example:" in its --help)
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("crossdistill segment --demo -o demo_out", "crossdistill segment chair.glb -o out --export-parts glb",
         "crossdistill models list"),
    "render": ("crossdistill render chair.glb -o views --views 36 --size 512",
               "crossdistill render --demo -o views --backend torch"),
    "info": ("crossdistill info chair.glb",),
    "segment": ("crossdistill segment chair.glb -o out",
                "crossdistill segment shapes/ -o out --scales 0 1 2 --export-parts glb",
                "crossdistill segment chair.glb -o out --teacher sam --device cuda --preset paper"),
    "select": ("crossdistill select out/chair --point 0.1 0.45 0.02 --scale 0.5 1",
               "crossdistill select out/chair --face 1234"),
    "name": ("crossdistill name out/chair --category chair", "crossdistill name out/ --offline"),
    "pretrain": ("crossdistill pretrain shapes/ -o backbone.pt",
                 "crossdistill segment chair.glb -o out --backbone backbone.pt"),
    "eval": ("crossdistill eval --benchmark partnet_mobility_dev --predictions out/ -o report/",
             "crossdistill eval --benchmark partnet_mobility_dev --method segment --limit 4"),
    "teachers": ("crossdistill teachers",),
    "models": ("crossdistill models list", "crossdistill models download sam"),
    "models list": ("crossdistill models list",),
    "models download": ("crossdistill models download sam",
                        "crossdistill models download dinov2 --to ~/weights/dinov2",
                        "HF_ENDPOINT=https://my-mirror.example crossdistill models download sam"),
    "distill": ("crossdistill distill partdistill --shapes laptops/ --parts screen,base --few-shot labelled/ -o run/",
                "crossdistill distill lidar --kitti kitti_object/ -o lidar_out"),
    "distill partdistill": ("crossdistill distill partdistill --shapes laptops/ --parts \"screen,laptop_base\" "
                            "--few-shot labelled/ -o run/",
                            "crossdistill distill partdistill --shapes laptops/ --parts screen,base --teacher owlv2 "
                            "--teacher-weights ~/weights/owlv2 -o run/"),
    "distill lidar": ("crossdistill distill lidar --kitti kitti_object/ -o lidar_out",
                      "crossdistill distill lidar --kitti more/ -o labelled --student lidar_out/student.pt"),
    "predict": ("crossdistill predict --checkpoint run/student.pt new_shapes/ -o labels/",),
    "discover": ("crossdistill discover photos/ -o parts_out", "crossdistill discover --demo -o demo_parts",
                 "crossdistill discover new_photos/ -o labelled --model parts_out/model.pt"),
}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that text holding line breaks (examples) is printed as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def alias_note(*old: str) -> str:
    """Help suffix naming the older spellings a flag still accepts."""
    return f" (older name{'s' if len(old) > 1 else ''} {', '.join(old)} still accepted)"


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                yield path, sub
                yield from _subparsers(sub, path)


def _global_flags(sub: argparse.ArgumentParser) -> None:
    """--debug / --quiet on a sub-parser without overwriting the value given before the sub-command."""
    have = {a.dest: a for a in sub._actions}
    if "debug" not in have:
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show full tracebacks on errors (accepted anywhere on the command line)")
    if "threads" not in have:
        sub.add_argument("--threads", type=int, default=argparse.SUPPRESS, metavar="N",
                         help="CPU threads of the numeric work; default: $CROSSDISTILL_THREADS, else every CPU "
                              "(accepted anywhere on the command line)")
    quiet = have.get("quiet")
    if quiet is None:
        sub.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                         help="no progress bars or notes on stderr (accepted anywhere on the command line)")
    else:
        quiet.default = argparse.SUPPRESS
        if not quiet.help:
            quiet.help = "no progress bars or notes on stderr"


def finish_parser(parser: argparse.ArgumentParser) -> None:
    """Global flags, one --device help and examples on every sub-command of ``parser`` (see module docstring)."""
    from crossdistill.engine.devices import DEVICE_HELP

    parser.formatter_class = HelpFormatter
    parser.epilog = "examples:\n" + "\n".join("  " + line for line in EXAMPLES[""])
    for path, sub in _subparsers(parser):
        sub.formatter_class = HelpFormatter
        _global_flags(sub)
        for action in sub._actions:
            if action.dest == "device" and action.option_strings:
                action.help = DEVICE_HELP + (f"; {action.help}" if action.help and "--method" in action.help else "")
        lines = EXAMPLES.get(path)
        if lines:
            text = ("example:\n" if len(lines) == 1 else "examples:\n") + "\n".join("  " + line for line in lines)
            note = sub.epilog if sub.epilog and "example" not in sub.epilog else None
            sub.epilog = text + (f"\n\n{note}" if note else "")


def say_teacher(role: str, teacher, quiet: bool, why: str = "") -> None:
    """One line on stderr naming the teacher that runs: ``<role> teacher: <id>[ (<why>)]`` (not with --quiet).

    Args:
        role: "mask", "feature", "text", "instance" or "2D".
        teacher: the teacher object (its ``teacher_id``), or a name for the offline defaults.
        quiet: ``--quiet`` was given.
        why: optional reason, e.g. "no SAM weights found".
    """
    if quiet:
        return
    ident = teacher if isinstance(teacher, str) else getattr(teacher, "teacher_id", type(teacher).__name__)
    print(f"{role} teacher: {ident}" + (f" ({why})" if why else ""), file=sys.stderr)
