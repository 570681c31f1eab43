"""`crossdistill name`: offline default, an OpenAI-compatible endpoint on 127.0.0.1, bad input.

The endpoint is a real HTTP server on the loopback speaking the Chat Completions
protocol; no test touches the network beyond it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main
from crossdistill.export.parts import scale_dirname

KEY = "sk-cli-test"


def chat_response(content: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.fixture
def endpoint() -> Iterator[Callable]:
    """start(replies) -> (base URL, received requests); replies: list of (status, body bytes), one per request."""
    servers = []

    def start(replies: list[tuple[int, bytes]]) -> tuple[str, list[dict]]:
        queue, seen = list(replies), []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                status, payload = queue.pop(0) if len(queue) > 1 else queue[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1", seen

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def ok(name: str) -> tuple[int, bytes]:
    return 200, json.dumps(chat_response(json.dumps({"name": name}))).encode()


@pytest.fixture(autouse=True)
def no_llm_env(monkeypatch):
    """Tests never see a real key or endpoint from the environment."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TEST_KEY"):
        monkeypatch.delenv(var, raising=False)


def make_object(root: Path, point_cloud: bool = False, scales=(0.0, 1.0, 2.0)) -> Path:
    """A `segment`-style object folder for a base box with a small box on top (labels: 0 base, 1 top)."""
    base = trimesh.creation.box(extents=(2.0, 1.0, 2.0))
    top = trimesh.creation.box(extents=(0.6, 0.4, 0.6))
    top.apply_translation((0, 0.7, 0))
    mesh = trimesh.util.concatenate([base, top])
    labels = np.concatenate([np.zeros(len(base.faces)), np.ones(len(top.faces))]).astype(np.int32)
    if point_cloud:
        pts, face = mesh.sample(3000, return_index=True, seed=0)
        src = root / "boxes.npy"
        np.save(src, np.asarray(pts, np.float64))
        labels, element, n = labels[face], "point", len(pts)
    else:
        src = root / "boxes.ply"
        mesh.export(src)
        element, n = "face", len(mesh.faces)
    obj = root / "out" / "boxes"
    for s in scales:
        (obj / scale_dirname(s)).mkdir(parents=True)
        np.save(obj / scale_dirname(s) / "labels.npy", labels)
    (obj / "segment.json").write_text(json.dumps({"input": str(src), "element": element, "n_elements": n,
                                                  "scales": list(scales)}))
    return obj


def glb_node_names(path: Path) -> set[str]:
    """The part names carried by the mesh nodes (``<input node>.part_<k>.<name>``)."""
    names = trimesh.load(path).graph.nodes_geometry
    assert all(re.match(r"^.+\.part_\d{3}\..+$", n) for n in names), names
    return {re.sub(r"^.+?\.part_\d{3}\.", "", n) for n in names}


def test_offline_default_without_key_or_endpoint(tmp_path, capsys):
    obj = make_object(tmp_path)
    assert main(["name", str(obj)]) == 0
    out, err = capsys.readouterr()
    assert "offline" in err and "OPENAI_API_KEY" in err
    folder = obj / "scale_1.0"  # the middle scale
    doc = json.loads((folder / "names.json").read_text())
    assert doc["offline"] is True and doc["namer"] == "offline-geometry-v1" and doc["model"] is None
    assert doc["names"]["0"] == "body" and "top" in doc["names"]["1"]
    assert glb_node_names(folder / "parts_named.glb") == set(doc["names"].values())
    assert json.loads((folder / "labels.json").read_text())["part_names"] == [doc["names"]["0"], doc["names"]["1"]]
    assert sorted(p.name for p in (folder / "highlights").iterdir()) == ["part_000.png", "part_001.png"]
    assert out.splitlines() == ["0\tbody", f"1\t{doc['names']['1']}"]
    assert not (obj / "scale_0.0" / "names.json").exists()


def test_llm_names_through_endpoint(tmp_path, endpoint, monkeypatch):
    obj = make_object(tmp_path)
    url, seen = endpoint([ok("Cabinet Body"), ok("knob")])
    monkeypatch.setenv("TEST_KEY", KEY)
    assert main(["name", str(obj), "--scale", "2", "--endpoint", url, "--api-key-env", "TEST_KEY",
                 "--model", "gpt-4o-mini", "--category", "cabinet", "--views", "2", "--size", "64", "--quiet"]) == 0
    assert len(seen) == 2
    for req in seen:
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"]["Authorization"] == f"Bearer {KEY}"
        body = req["json"]
        assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0
        text, image = body["messages"][0]["content"]
        assert "cabinet" in text["text"]
        url_data = image["image_url"]["url"]
        assert url_data.startswith("data:image/png;base64,")
        assert base64.b64decode(url_data.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    folder = obj / "scale_2.0"
    doc = json.loads((folder / "names.json").read_text())
    assert doc["names"] == {"0": "cabinet body", "1": "knob"}
    assert doc["offline"] is False and doc["model"] == "gpt-4o-mini" and doc["endpoint"] == url
    assert KEY not in (folder / "names.json").read_text()
    assert glb_node_names(folder / "parts_named.glb") == {"cabinet body", "knob"}


def test_key_alone_uses_base_url_env(tmp_path, endpoint, monkeypatch):
    obj = make_object(tmp_path, scales=(1.0,))
    url, seen = endpoint([ok("lid")])
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert main(["name", str(obj), "--views", "1", "--size", "48", "--quiet"]) == 0
    assert len(seen) == 2 and seen[0]["json"]["model"] == "gpt-4o"
    doc = json.loads((obj / "scale_1.0" / "names.json").read_text())
    assert doc["names"] == {"0": "lid", "1": "lid 2"}  # repeated answers are made unique


def test_server_error_retried_then_names(tmp_path, endpoint):
    obj = make_object(tmp_path, scales=(1.0,))
    url, seen = endpoint([(500, b'{"error": {"message": "boom"}}'), ok("base"), ok("lid")])
    assert main(["name", str(obj), "--endpoint", url, "--views", "1", "--size", "48", "--quiet"]) == 0
    assert len(seen) == 3
    doc = json.loads((obj / "scale_1.0" / "names.json").read_text())
    assert doc["names"] == {"0": "base", "1": "lid"}


def test_unauthorized_is_one_line_exit_2(tmp_path, endpoint, monkeypatch, capsys):
    obj = make_object(tmp_path, scales=(1.0,))
    url, _ = endpoint([(401, b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}')])
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")
    assert main(["name", str(obj), "--endpoint", url, "--views", "1", "--size", "48", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 401" in err and "Incorrect API key" in err and "wrong-key" not in err
    assert not (obj / "scale_1.0" / "names.json").exists()


def test_garbage_response_is_one_line_exit_2(tmp_path, endpoint, capsys):
    obj = make_object(tmp_path, scales=(1.0,))
    url, _ = endpoint([(200, b"this is not json")])
    assert main(["name", str(obj), "--endpoint", url, "--views", "1", "--size", "48", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed response" in err


def test_point_cloud_offline(tmp_path):
    obj = make_object(tmp_path, point_cloud=True, scales=(1.0,))
    assert main(["name", str(obj), "--offline", "--views", "2", "--size", "64", "--quiet"]) == 0
    folder = obj / "scale_1.0"
    doc = json.loads((folder / "names.json").read_text())
    assert "top" in doc["names"]["1"] and not (folder / "parts_named.glb").exists()
    assert json.loads((folder / "labels.json").read_text())["element"] == "point"
    assert len(list((folder / "highlights").glob("part_*.png"))) == 2


def test_real_segment_output_demo(tmp_path):
    out = tmp_path / "seg"
    assert main(["segment", "--demo", "--iterations", "20", "--points", "2000", "--views", "8", "--size", "96",
                 "--scales", "1", "-o", str(out), "--quiet"]) == 0
    assert main(["name", str(out / "demo"), "--offline", "--quiet"]) == 0
    folder = out / "demo" / "scale_1.0"
    doc = json.loads((folder / "names.json").read_text())
    labels = np.load(folder / "labels.npy")
    assert sorted(int(k) for k in doc["names"]) == sorted(np.unique(labels).tolist())
    assert glb_node_names(folder / "parts_named.glb") == set(doc["names"].values())
    assert any("top" in n for n in doc["names"].values())


@pytest.mark.parametrize("case", ["missing", "no_marker", "bad_scale", "moved", "wrong_count", "bad_views"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, case):
    obj = make_object(tmp_path)
    args = ["name", str(obj), "--offline", "--quiet"]
    if case == "missing":
        args[1] = str(tmp_path / "nope")
    elif case == "no_marker":
        (obj / "segment.json").unlink()
    elif case == "bad_scale":
        args += ["--scale", "0.7"]
    elif case == "moved":
        (tmp_path / "boxes.ply").rename(tmp_path / "elsewhere.ply")
    elif case == "wrong_count":
        np.save(obj / "scale_1.0" / "labels.npy", np.zeros(5, np.int32))
    else:
        args += ["--views", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_folder_of_objects_is_named_resumably_with_failures_isolated(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_object(tmp_path / "a")
    second = make_object(tmp_path / "b", point_cloud=True)
    root = tmp_path / "all"
    root.mkdir()
    first.rename(root / "boxes")
    second.rename(root / "cloud")
    broken = root / "nested" / "broken"
    broken.mkdir(parents=True)
    (broken / "segment.json").write_text("{not json")
    assert main(["name", str(root), "--offline", "--quiet"]) == 1  # one object failed, the others are named
    assert set(json.loads((root / "failures.json").read_text())) == {"nested/broken"}
    marks = [root / "boxes" / "scale_1.0" / "names.json", root / "cloud" / "scale_1.0" / "names.json"]
    stamps = [m.stat().st_mtime_ns for m in marks]
    assert all(json.loads(m.read_text())["names"]["0"] == "body" for m in marks)
    # re-run without the broken object: finished objects are skipped, not redone
    (broken / "segment.json").unlink()
    capsys.readouterr()
    assert main(["name", str(root), "--offline", "--quiet"]) == 0
    assert "0 done, 2 already done, 0 failed" in capsys.readouterr().err
    assert [m.stat().st_mtime_ns for m in marks] == stamps and not (root / "failures.json").exists()
    # other settings (another scale) are a different job
    assert main(["name", str(root), "--offline", "--quiet", "--scale", "2"]) == 0
    assert (root / "boxes" / "scale_2.0" / "names.json").is_file()
