"""Conventions every sub-command keeps: help on every flag, an example in every help, --debug / --quiet
anywhere, one flag name per concept (old names still parse), --device checked once (mps where torch has it),
and the teacher that runs named on stderr."""

from __future__ import annotations

import argparse

import pytest

from crossdistill.cli.common import quiet_libraries, say_teacher
from crossdistill.cli.limits import _subparsers
from crossdistill.cli.main import build_parser, main
from crossdistill.engine.devices import resolve_device
from crossdistill.errors import InputError

PARSER = build_parser()
COMMANDS = dict(_subparsers(PARSER))


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_flag_has_help_and_every_command_an_example(path):
    sub = COMMANDS[path]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), f"{path}: {action.option_strings or action.dest} has no help"
    text = sub.format_help()
    assert "example" in text and f"crossdistill {path}" in text, f"{path} --help shows no example"


@pytest.mark.parametrize("argv", [
    ["segment", "x.glb", "-o", "o"], ["info", "x.glb"], ["models", "list"], ["distill", "lidar", "--kitti", "k", "-o", "o"],
    ["eval", "--benchmark", "b", "--predictions", "p"], ["teachers"],
])
def test_debug_and_quiet_anywhere(argv):
    assert not PARSER.parse_args(argv).debug and not PARSER.parse_args(argv).quiet
    for flags in (["--debug", "--quiet"],):
        before = PARSER.parse_args(flags + argv)
        after = PARSER.parse_args(argv + flags)
        mixed = PARSER.parse_args(flags[:1] + argv + flags[1:])
        for ns in (before, after, mixed):
            assert ns.debug is True and ns.quiet is True


@pytest.mark.parametrize("argv, dest, value", [
    (["segment", "x", "-o", "o", "--mask-teacher", "offline"], "mask_teacher", "offline"),
    (["segment", "x", "-o", "o", "--teacher", "offline"], "mask_teacher", "offline"),
    (["segment", "x", "-o", "o", "--sam-weights", "w"], "teacher_weights", "w"),
    (["segment", "x", "-o", "o", "--mask-model", "m.pt"], "teacher_weights", "m.pt"),
    (["eval", "--benchmark", "b", "--method", "segment", "--teacher-weights", "w"], "teacher_weights", "w"),
    (["pretrain", "s", "-o", "b.pt", "--steps", "7"], "steps", 7),
    (["pretrain", "s", "-o", "b.pt", "--iterations", "7"], "steps", 7),
    (["discover", "--demo", "-o", "o", "--steps", "9"], "steps", 9),
    (["discover", "--demo", "-o", "o", "--iterations", "9"], "steps", 9),
])
def test_one_name_per_concept_old_names_still_parse(argv, dest, value):
    assert getattr(PARSER.parse_args(argv), dest) == value


def test_old_names_are_noted_in_help():
    seg = COMMANDS["segment"].format_help()
    assert "older name --mask-teacher still accepted" in " ".join(seg.split())
    assert "older names --sam-weights, --mask-model still accepted" in " ".join(seg.split())
    assert "older name --steps still accepted" in " ".join(COMMANDS["pretrain"].format_help().split())


def test_device_names(monkeypatch):
    import torch

    assert resolve_device("cpu") == "cpu" and resolve_device(None) == "cpu"
    with pytest.raises(InputError, match="must be cpu, cuda, cuda:N, mps or auto"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda:0")
    with pytest.raises(InputError, match="mps requested but"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)  # an Apple machine
    assert resolve_device("mps") == "mps" and resolve_device("auto") == "mps"


def test_device_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)  # not an Apple GPU machine
    out = tmp_path / "views"
    assert main(["render", "--demo", "-o", str(out), "--device", "mps"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device mps requested but" in err and not out.exists()
    assert "mps" in COMMANDS["segment"].format_help() and "mps" in COMMANDS["render"].format_help()


def test_quiet_silences_library_progress_bars(tmp_path, capsys):
    pytest.importorskip("transformers")
    from transformers import SamModel

    from crossdistill.teachers import testing

    testing.tiny_sam().save_pretrained(tmp_path / "sam")
    capsys.readouterr()
    SamModel.from_pretrained(tmp_path / "sam")
    loud = capsys.readouterr().err
    with quiet_libraries():
        SamModel.from_pretrained(tmp_path / "sam")
    quiet = capsys.readouterr().err
    assert "Loading weights" in loud and quiet == ""  # transformers' own bar, silenced
    import os

    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ  # restored on the way out
    SamModel.from_pretrained(tmp_path / "sam")
    assert "Loading weights" in capsys.readouterr().err  # and the bars are back


def test_teacher_line(capsys):
    say_teacher("mask", "offline render-based masks", quiet=False, why="no SAM weights found")
    say_teacher("mask", "x", quiet=True)
    assert capsys.readouterr().err == "mask teacher: offline render-based masks (no SAM weights found)\n"


def test_bound_errors_name_the_current_flag(tmp_path, capsys):
    assert main(["pretrain", str(tmp_path), "-o", str(tmp_path / "b.pt"), "--steps", "0"]) == 2
    assert "--iterations must be in 1..1000000" in capsys.readouterr().err
