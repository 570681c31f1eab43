"""Command-line options of the flagship shared by `segment` and `eval --method segment`:
the preset, the mask teacher, and every setting of SAM's automatic mask generator."""

from __future__ import annotations

import argparse
import dataclasses
import re

from crossdistill.errors import InputError

PRESET_CHOICES = ("auto", "fast", "paper")


def _field_help(cls: type) -> dict[str, str]:
    """Per-attribute help text, read from a dataclass docstring's ``Attributes:`` section."""
    doc = cls.__doc__ or ""
    out: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        m = re.match(r"\s{8}(\w+): (.*)", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.startswith(" " * 12):
            out[current] += " " + line.strip()
    return out


def add_preset_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="auto", choices=PRESET_CHOICES,
                   help="settings preset: paper (SAMPart3D's settings, no rule beyond the paper; meant for a GPU), "
                        "fast (the CPU budget), auto = paper on CUDA, fast on the CPU (default: auto)")
    p.add_argument("--scale-unit", default=None, choices=["relative", "sigma"],
                   help="what --scales mean: sigma = the paper's mask scale (Eq. 3), relative = 0..2 over the "
                        "object's own mask scales (default: the preset's: sigma for paper, relative for fast)")


def add_mask_teacher_arguments(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """--mask-teacher, --sam-weights, --mask-model and one --sam-* flag per generator setting."""
    from crossdistill.teachers.sam_settings import AutoMaskSettings

    from crossdistill.cli.common import alias_note

    p.add_argument("--teacher", "--mask-teacher", dest="mask_teacher", default=default,
                   choices=["auto", "offline", "render", "geometric", "sam", "learned"],
                   help="2D mask teacher: sam (needs SAM weights: `crossdistill models download sam`), offline "
                        "(no weights: geometric parts on a closed single surface, render cues on other meshes and on "
                        "point clouds), render (render cues only), geometric (spectral part partitions of the "
                        "surface only), learned (a teacher trained on labelled shapes, --teacher-weights FILE), auto = sam when its weights are found, else offline "
                        f"(default: {default})" + alias_note("--mask-teacher"))
    p.add_argument("--teacher-weights", "--sam-weights", "--mask-model", dest="teacher_weights", default=None,
                   metavar="PATH",
                   help="the teacher's weights: a local SAM model folder (default: facebook/sam-vit-base from "
                        "$CROSSDISTILL_MODELS or the Hugging Face cache), or the learned teacher's file"
                        + alias_note("--sam-weights", "--mask-model"))
    g = p.add_argument_group("SAM automatic mask generation (defaults: SAM's generator; with --preset paper, "
                             "SAMPart3D's call: pred IoU 0.9, stability 0.9, background cover 0.1)")
    helps = _field_help(AutoMaskSettings)
    for f in dataclasses.fields(AutoMaskSettings):
        flag = "--sam-" + f.name.replace("_", "-")
        default_value = f.default
        text = helps.get(f.name, "")
        if isinstance(default_value, bool):
            g.add_argument(flag, dest="sam_" + f.name, default=None, type=_parse_bool, metavar="yes|no",
                           help=f"{text} (default: {'yes' if default_value else 'no'})")
        else:
            kind = float if isinstance(default_value, float) or default_value is None else int
            g.add_argument(flag, dest="sam_" + f.name, default=None, type=_optional(kind),
                           help=f"{text} (default: {default_value}{'; none to turn off' if default_value is None or f.name in ('max_masks', 'max_background_cover') else ''})")


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in {"yes", "true", "1", "on"}:
        return True
    if t in {"no", "false", "0", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


_OFF = "off"  # what an optional setting's flag parses "none" / "off" to (None means: flag not given)


def _optional(kind: type):
    def parse(text: str):
        if text.strip().lower() in {"none", "off"}:
            return _OFF
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} or none, got {text!r}") from None
    return parse


def resolved_preset(args: argparse.Namespace) -> str:
    """``fast`` or ``paper``: ``auto`` is paper on CUDA, fast elsewhere."""
    name = getattr(args, "preset", "auto")
    if name == "auto":
        return "paper" if str(getattr(args, "device", "cpu")).startswith("cuda") else "fast"
    return name


def sam_settings_from_args(args: argparse.Namespace):
    """The :class:`AutoMaskSettings` the flags ask for, on top of the preset's."""
    from crossdistill.teachers.sam_settings import SAMPART3D_SAM_SETTINGS, AutoMaskSettings

    base = SAMPART3D_SAM_SETTINGS if resolved_preset(args) == "paper" else AutoMaskSettings()
    given = {f.name: getattr(args, "sam_" + f.name) for f in dataclasses.fields(AutoMaskSettings)
             if getattr(args, "sam_" + f.name, None) is not None}
    for name, value in list(given.items()):
        if value == _OFF:
            if name not in ("max_masks", "max_background_cover"):
                raise InputError(f"--sam-{name.replace('_', '-')} needs a value (only the max_* settings can be none)")
            given[name] = None
    settings = dataclasses.replace(base, **given)
    if settings.points_per_side < 1 or settings.points_per_batch < 1 or settings.crop_n_layers < 0:
        raise InputError("--sam-points-per-side and --sam-points-per-batch must be >= 1, --sam-crop-n-layers >= 0")
    return settings


def mask_teacher_from_args(args: argparse.Namespace):
    """None (the pipeline's offline default), or the SAM / learned teacher the flags ask for; one line on
    stderr names the teacher that will run (not with --quiet)."""
    from crossdistill.cli.common import say_teacher
    from crossdistill.teachers.registry import load_mask_teacher

    teacher = load_mask_teacher(args.mask_teacher, args.teacher_weights, device=args.device,
                                sam_settings=sam_settings_from_args(args))
    quiet = getattr(args, "quiet", False)
    if teacher is not None:
        say_teacher("mask", teacher, quiet)
    elif args.mask_teacher == "auto":
        say_teacher("mask", "offline render-based masks", quiet,
                    "no SAM weights found; `crossdistill models download sam` gets them")
    else:
        say_teacher("mask", "offline render-based masks", quiet)
    return teacher
