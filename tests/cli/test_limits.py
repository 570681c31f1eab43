"""Option bounds: checked before any work, one line, exit 2, and shown in --help (issue 30, item 6)."""

from __future__ import annotations

import pytest

from crossdistill.cli.main import build_parser, main


@pytest.mark.parametrize("argv, message", [
    (["segment", "{x}", "-o", "{out}", "--size", "100000"], "--size must be in 32..2048"),
    (["segment", "{x}", "-o", "{out}", "--points", "1000000000"], "--points must be in 100..200000"),
    (["segment", "{x}", "-o", "{out}", "--points", "1e9"], "invalid int value"),
    (["segment", "{x}", "-o", "{out}", "--scales", "nan"], "--scales must be a finite number"),
    (["segment", "{x}", "-o", "{out}", "--scales", "0", "5"], "--scales must be in 0..2"),
    (["segment", "{x}", "-o", "{out}", "--views", "360", "--size", "2048"], "Mi pixels per object"),
    (["segment", "{x}", "-o", "{out}", "--seed", "-1"], "--seed must be in"),
    (["select", "{x}", "--face", "0", "--scale", "99"], "--scale must be in 0..2"),
    (["select", "{x}", "--point", "0", "inf", "0"], "--point must be a finite number"),
    (["discover", "{x}", "-o", "{out}", "--k", "40"], "--k must be in 2..12"),
    (["distill", "lidar", "--kitti", "{x}", "-o", "{out}", "--voxel-size", "nan"], "--voxel-size must be a finite"),
    (["render", "{x}", "-o", "{out}", "--size", "9000"], "--size must be in 16..2048"),
    (["distill", "partdistill", "--shapes", "{x}", "--parts", "a,b", "-o", "{out}", "--points", "10"],
     "--points must be in 64..200000"),
])
def test_out_of_range_options_fail_first_with_one_line(argv, message, tmp_path, capsys):
    missing = tmp_path / "not_there.glb"  # never read: the options fail first
    code = exit_code([a.format(x=missing, out=tmp_path / "out") for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def exit_code(argv: list[str]) -> int:
    """`crossdistill ARGV`'s exit code (argparse usage errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_bounds_are_in_the_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["segment"]
    helps = {a.dest: a.help for a in sub._actions}
    assert "allowed: 0..2" in helps["scales"] and "allowed: 32..2048" in helps["size"]
