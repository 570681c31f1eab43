"""`crossdistill models list | download` against a local HTTP server speaking the Hugging Face Hub's
download protocol (repository info, file tree, resolve with HEAD + GET): no network."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from crossdistill.cli.main import main
from crossdistill.teachers import registry

SHA = "0123456789abcdef0123456789abcdef01234567"
HUB_ID = "facebook/sam-vit-base"


class Hub:
    """A tiny hub: one repository whose files are given in memory; records the requests it got."""

    def __init__(self, repo: str, files: dict[str, bytes]):
        self.repo, self.files, self.requests = repo, files, []

    def handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, obj, head=False):
                self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"}, head)

            def _route(self, head: bool):
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                info = f"/api/models/{hub.repo}"
                if path in (info, f"{info}/revision/main", f"{info}/revision/{SHA}"):
                    return self._json({"id": hub.repo, "modelId": hub.repo, "sha": SHA,
                                       "siblings": [{"rfilename": f} for f in hub.files]}, head)
                if path.startswith(f"{info}/tree/"):
                    return self._json([{"type": "file", "path": f, "size": len(b),
                                        "oid": hashlib.sha1(b).hexdigest()} for f, b in hub.files.items()], head)
                prefix = f"/{hub.repo}/resolve/"
                if path.startswith(prefix):
                    rev, _, name = path[len(prefix):].partition("/")
                    if name in hub.files and rev in ("main", SHA):
                        body = hub.files[name]
                        return self._send(200, body, {"X-Repo-Commit": SHA,
                                                      "ETag": f'"{hashlib.sha1(body).hexdigest()}"'}, head)
                return self._send(404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"}, head)

            def do_GET(self):
                self._route(False)

            def do_HEAD(self):
                self._route(True)

        return Handler


@pytest.fixture(scope="module")
def tiny_sam_files(tmp_path_factory) -> dict[str, bytes]:
    """The files of a tiny random SAM (config, safetensors weights, processor) plus a PyTorch copy of the
    weights and a TF file the download must skip."""
    pytest.importorskip("transformers")
    from transformers import SamImageProcessorPil, SamProcessor

    from crossdistill.teachers import testing

    path = tmp_path_factory.mktemp("sam-src")
    testing.tiny_sam().save_pretrained(path)
    SamProcessor(image_processor=SamImageProcessorPil(size={"longest_edge": 64},
                                                      pad_size={"height": 64, "width": 64})).save_pretrained(path)
    files = {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}
    files["pytorch_model.bin"] = b"not needed: safetensors are there"
    files["tf_model.h5"] = b"not needed either"
    files["README.md"] = b"# tiny sam"
    return files


@pytest.fixture
def hub(tiny_sam_files):
    hub = Hub(HUB_ID, tiny_sam_files)
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield hub
    server.shutdown()
    server.server_close()


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process (huggingface_hub reads its settings at import)."""
    code = "import sys; from crossdistill.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "CROSSDISTILL_"))}
    env |= {"HF_HOME": str(tmp_path / "hf"), "CROSSDISTILL_MODELS": str(tmp_path / "models"),
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    return env | extra


def test_download_from_hf_endpoint_then_sam_is_found(tmp_path, hub, monkeypatch, capsys):
    env = _env(tmp_path, HF_ENDPOINT=hub.url)
    done = _cli(["models", "download", "sam"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    dest = tmp_path / "models" / HUB_ID
    assert done.stdout.strip() == str(dest)
    got = sorted(p.name for p in dest.iterdir())
    assert {"config.json", "model.safetensors"} <= set(got) and any("processor" in g for g in got)
    assert "pytorch_model.bin" not in got and "tf_model.h5" not in got and "README.md" not in got
    assert (dest / "model.safetensors").read_bytes() == hub.files["model.safetensors"]
    assert not list((tmp_path / "models" / "facebook").glob(".*"))  # no partial or old copy left
    assert any(path.startswith(f"/{HUB_ID}/resolve/") for _, path in hub.requests)
    # `models list` now says present, and `auto` picks SAM from there
    monkeypatch.setenv("CROSSDISTILL_MODELS", str(tmp_path / "models"))
    assert main(["models", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("sam "))
    assert HUB_ID in row and "Apache-2.0" in row and "375 MB" in row and " yes " in row and "segment" in row
    assert type(registry.load_mask_teacher("auto")).__name__ == "SamMaskTeacher"


def test_download_to_a_folder_of_ones_choice(tmp_path, hub):
    target = tmp_path / "weights" / "my-sam"
    done = _cli(["models", "download", HUB_ID, "--to", str(target), "--quiet"], _env(tmp_path, HF_ENDPOINT=hub.url),
                tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and (target / "config.json").is_file()
    assert not (tmp_path / "models").exists()


def test_offline_mode_downloads_nothing(tmp_path, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("CROSSDISTILL_MODELS", str(tmp_path / "models"))
    assert main(["models", "download", "sam"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HF_HUB_OFFLINE is set" in err and "Traceback" not in err
    assert hub.requests == [] and not (tmp_path / "models").exists()


def test_unreachable_endpoint_is_one_line(tmp_path):
    env = _env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9")  # the discard port: nothing listens
    done = _cli(["models", "download", "dinov2", "--quiet"], env, tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "downloading facebook/dinov2-small from http://127.0.0.1:9 failed" in done.stderr
    assert not list((tmp_path / "models").rglob("config.json"))


def test_unknown_model_is_one_line(capsys):
    assert main(["models", "download", "glip"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'glip'" in err and "sam" in err


def test_list_needs_no_network(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CROSSDISTILL_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("sam", "dinov2", "clipseg", "owlv2", "grounding-dino", "mask2former", "segformer"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert " yes " not in out
