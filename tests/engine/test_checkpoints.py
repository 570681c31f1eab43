"""Checkpoint files: round trip, atomic write, and one-line errors for every kind of bad file."""

from __future__ import annotations

import pytest
import torch

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.errors import InputError


def test_round_trip_keeps_tensors_and_plain_values(tmp_path):
    path = tmp_path / "sub" / "a.pt"
    save_checkpoint(path, "fmt-v1", {"w": torch.arange(4.0), "meta": {"n": 3, "names": ["a", "b"]}})
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]  # no temporary file left behind
    doc = load_checkpoint(path, "fmt-v1", "thing", lambda d: d)
    assert torch.equal(doc["w"], torch.arange(4.0)) and doc["meta"] == {"n": 3, "names": ["a", "b"]}


@pytest.mark.parametrize("case", ["missing", "garbage", "other_format", "not_a_dict", "build_fails"])
def test_bad_files_are_one_line_input_errors(tmp_path, case):
    path = tmp_path / "c.pt"
    build = lambda d: d  # noqa: E731
    if case == "garbage":
        path.write_bytes(b"\x80\x04 not a checkpoint")
    elif case == "other_format":
        save_checkpoint(path, "other-v1", {})
    elif case == "not_a_dict":
        torch.save([1, 2], path)
    elif case == "build_fails":
        save_checkpoint(path, "fmt-v1", {"w": torch.zeros(2)})

        def build(d):
            raise KeyError("state_dict\nsecond line")
    with pytest.raises(InputError) as err:
        load_checkpoint(path, "fmt-v1", "thing", build)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "thing" in msg
