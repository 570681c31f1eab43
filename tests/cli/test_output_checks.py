"""`-o` that cannot hold outputs is refused first, by every command (issue 30, item 5)."""

from __future__ import annotations

import pytest
import trimesh

from crossdistill.cli.main import main


@pytest.fixture
def blocker(tmp_path):
    f = tmp_path / "a_file.txt"
    f.write_bytes(b"keep me")
    return f


COMMANDS = [
    ["segment", "{mesh}", "-o", "{out}"],
    ["render", "{mesh}", "-o", "{out}"],
    ["discover", "{mesh}", "-o", "{out}"],
    ["distill", "lidar", "--kitti", "{tmp}", "-o", "{out}"],
    ["distill", "partdistill", "--shapes", "{tmp}", "--parts", "a,b", "--few-shot", "{tmp}", "-o", "{out}"],
    ["eval", "--benchmark", "partnet_mobility_dev", "--predictions", "{tmp}", "-o", "{out}"],
    ["pretrain", "{tmp}", "-o", "{out}"],  # -o names a file: a folder, or a path under a file, is refused
]


@pytest.mark.parametrize("where", ["file", "under_file"])
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_output_that_is_a_file_fails_first(argv, where, tmp_path, blocker, capsys):
    mesh = tmp_path / "m.stl"
    trimesh.creation.box().export(mesh)
    out = blocker if where == "file" else blocker / "sub"
    if argv[0] == "pretrain" and where == "file":
        out = tmp_path  # an existing folder where a file name is expected
    code = main([a.format(mesh=mesh, out=out, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and ("not a folder" in err or "is a folder" in err), err
    assert blocker.read_bytes() == b"keep me"


def test_unwritable_output_folder_fails_first(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        try:  # root writes through 0555 (only a read-only mount stops it: see tests/engine/test_batch_outputs.py)
            (ro / "probe").write_bytes(b"")
            (ro / "probe").unlink()
            pytest.skip("running as root: a 0555 folder is writable, so it is not an error")
        except PermissionError:
            pass
        mesh = tmp_path / "m.stl"
        trimesh.creation.box().export(mesh)
        assert main(["render", str(mesh), "-o", str(ro / "out")]) == 2
        err = capsys.readouterr().err
        assert "cannot write" in err and len(err.strip().splitlines()) == 1
    finally:
        ro.chmod(0o755)
