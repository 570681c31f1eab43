"""Part naming (:mod:`crossdistill.methods.sampart3d.naming`) and the chat client (:mod:`crossdistill.teachers.mllm`).

The LLM side talks to a real HTTP server on 127.0.0.1 (port 0) that speaks the OpenAI
Chat Completions protocol; nothing touches the network beyond the loopback.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import trimesh
from PIL import Image

from crossdistill.errors import InputError
from crossdistill.geometry.demo import demo_part_labels, demo_shape
from crossdistill.methods.sampart3d.naming import (MLLMNamer, OfflineNamer, PartNamer, dedupe_names, parse_name,
                                                   part_prompt)
from crossdistill.viz.highlight import HIGHLIGHT_RGB, render_highlights
from crossdistill.teachers.mllm import ChatClient
from crossdistill.types import Shape

KEY = "sk-test-123"

# --------------------------------------------------------------------------- fake endpoint


def chat_response(content: str) -> dict:
    """A Chat Completions response in the shape the OpenAI API returns."""
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105}}


class FakeChat:
    """Answers POST /chat/completions with ``reply(request_json) -> (status, body bytes, headers)``."""

    def __init__(self, reply: Callable[[dict], tuple[int, bytes, dict]]):
        self.reply = reply
        self.requests: list[dict] = []  # {"path", "headers", "json"}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                doc = json.loads(body)
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "json": doc})
                status, payload, headers = outer.reply(doc)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def fake_chat() -> Iterator[Callable[[Callable], FakeChat]]:
    servers: list[FakeChat] = []

    def start(reply: Callable[[dict], tuple[int, bytes, dict]]) -> FakeChat:
        srv = FakeChat(reply)
        srv.thread.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.server.shutdown()
        srv.server.server_close()


def ok(content: str) -> tuple[int, bytes, dict]:
    return 200, json.dumps(chat_response(content)).encode(), {}


def decode_data_url(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    raw = base64.b64decode(url.split(",", 1)[1])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(raw))


# --------------------------------------------------------------------------- shapes


def two_boxes() -> tuple[Shape, np.ndarray]:
    """A wide base box with a small box on top: (shape, (F,) labels: 0 base, 1 top)."""
    base = trimesh.creation.box(extents=(2.0, 1.0, 2.0))
    top = trimesh.creation.box(extents=(0.6, 0.4, 0.6))
    top.apply_translation((0, 0.7, 0))
    mesh = trimesh.util.concatenate([base, top])
    labels = np.concatenate([np.zeros(len(base.faces)), np.ones(len(top.faces))]).astype(np.int32)
    return Shape(np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int64)), labels


# --------------------------------------------------------------------------- parsing and names


@pytest.mark.parametrize("answer, name", [
    ('{"name": "lid"}', "lid"),
    ('```json\n{"name": "Chair Leg"}\n```', "chair leg"),
    ('Sure! {"name": "the Handle"}', "handle"),
    ('"Seat."', "seat"),
    ("name: Back Rest\nbecause it is at the back", "back rest"),
    ("The highlighted part is the left armrest.", "left armrest"),
    ("a very long name with far too many words", "very long name with"),
    ("", ""),
    ("{}", ""),
])
def test_parse_name(answer, name):
    assert parse_name(answer) == name


def test_dedupe_names_numbers_repeats_in_order():
    assert dedupe_names(["leg", "leg", "seat", "leg"]) == ["leg", "leg 2", "seat", "leg 3"]
    assert dedupe_names(["a", "a 2", "a"]) == ["a", "a 2", "a 3"]


def test_prompt_mentions_category_views_and_json():
    p = part_prompt(4, "chair")
    assert "a chair" in p and "4 views" in p and '{"name"' in p
    assert "one 3D object" in part_prompt(1) and "an office chair" in part_prompt(2, " office chair ")


def test_offline_namer_two_boxes_top_part_and_body():
    shape, labels = two_boxes()
    namer = OfflineNamer()
    assert isinstance(namer, PartNamer) and namer.offline
    names = namer.name_parts(shape, labels)
    assert names[0] == "body"
    assert "top" in names[1] and names[1] != "body"


def test_offline_namer_demo_positions_and_unique():
    shape, coarse = demo_shape(), demo_part_labels()["coarse"]  # head torso larm rarm lleg rleg
    names = OfflineNamer().name_parts(shape, coarse)
    assert len(set(names)) == len(names) == 6
    assert "top" in names[0]
    assert "left" in names[2] and "right" in names[3]
    assert "bottom" in names[4] and "bottom" in names[5]


def test_offline_namer_point_cloud_and_empty_label():
    shape, labels = two_boxes()
    pts, face = trimesh.Trimesh(shape.vertices, shape.faces).sample(3000, return_index=True, seed=0)
    cloud = Shape(np.asarray(pts, float))
    lab = labels[face].copy()
    lab[lab == 1] = 2  # label 1 has no point
    names = OfflineNamer().name_parts(cloud, lab)
    assert names[1] == "empty part" and "top" in names[2]


# --------------------------------------------------------------------------- highlighted renders


def test_render_highlights_marks_only_the_part():
    shape, labels = two_boxes()
    hl = render_highlights(shape, labels, n_views=3, size=64)
    assert len(hl.images) == 2 and hl.n_views == 3
    h, w, c = hl.images[0].shape
    assert c == 3 and hl.images[0].dtype == np.uint8 and w > 2 * h  # 3 views side by side, cropped
    assert (hl.visible_px > 0).all() and hl.visible_px[0] > hl.visible_px[1]

    def orange(img: np.ndarray) -> int:
        r, g, b = (img[..., i].astype(int) for i in range(3))
        return int(((r > g + 60) & (r > b + 60)).sum())

    # the small top box lights up fewer pixels than the base; every image shows some highlight
    assert 0 < orange(hl.images[1]) < orange(hl.images[0])
    assert HIGHLIGHT_RGB[0] > HIGHLIGHT_RGB[1]


def test_render_highlights_point_cloud_uses_splat_ids():
    shape, labels = two_boxes()
    pts, face = trimesh.Trimesh(shape.vertices, shape.faces).sample(4000, return_index=True, seed=0)
    hl = render_highlights(Shape(np.asarray(pts, float)), labels[face], n_views=2, size=64)
    assert len(hl.images) == 2 and (hl.visible_px > 0).all()


# --------------------------------------------------------------------------- chat client


def test_client_speaks_the_chat_completions_protocol(fake_chat):
    srv = fake_chat(lambda doc: ok('{"name": "lid"}'))
    client = ChatClient(srv.url, "gpt-4o", KEY)
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, :10] = (255, 0, 0)
    assert client.complete("what is it?", [image], max_tokens=12) == '{"name": "lid"}'
    (req,) = srv.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    body = req["json"]
    assert body["model"] == "gpt-4o" and body["temperature"] == 0 and body["max_tokens"] == 12
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    text, img = msg["content"]
    assert text == {"type": "text", "text": "what is it?"} and img["type"] == "image_url"
    decoded = np.asarray(decode_data_url(img["image_url"]["url"]).convert("RGB"))
    assert np.array_equal(decoded, image)
    assert KEY not in repr(client)


def test_client_without_key_sends_no_authorization(fake_chat, monkeypatch):
    srv = fake_chat(lambda doc: ok("x"))
    monkeypatch.delenv("MY_KEY", raising=False)
    client = ChatClient.from_env("m", srv.url, api_key_env="MY_KEY")
    client.complete("hi")
    assert "Authorization" not in srv.requests[0]["headers"]


def test_client_key_and_url_from_env(fake_chat, monkeypatch):
    srv = fake_chat(lambda doc: ok("x"))
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/")
    monkeypatch.setenv("ALT_KEY", "k2")
    client = ChatClient.from_env("m", None, api_key_env="ALT_KEY")
    client.complete("hi")
    assert srv.requests[0]["headers"]["Authorization"] == "Bearer k2"


def test_client_retries_500_then_succeeds(fake_chat):
    answers = iter([(500, b'{"error": {"message": "overloaded"}}', {}),
                    (429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"}),
                    ok("fine")])
    srv = fake_chat(lambda doc: next(answers))
    slept: list[float] = []
    client = ChatClient(srv.url, "m", KEY, retries=3, backoff_s=0.5, sleep=slept.append)
    assert client.complete("hi") == "fine"
    assert len(srv.requests) == 3 and slept == [0.5, 0.0]


def test_client_gives_up_after_bounded_retries(fake_chat):
    srv = fake_chat(lambda doc: (503, b"busy", {}))
    client = ChatClient(srv.url, "m", KEY, retries=2, sleep=lambda s: None)
    with pytest.raises(InputError, match="HTTP 503 after 3 attempts"):
        client.complete("hi")
    assert len(srv.requests) == 3


def test_client_401_is_one_line_without_the_key(fake_chat):
    srv = fake_chat(lambda doc: (401, json.dumps({"error": {"message": "Incorrect API key\nprovided",
                                                            "type": "invalid_request_error"}}).encode(), {}))
    client = ChatClient(srv.url, "m", KEY, sleep=lambda s: None)
    with pytest.raises(InputError) as err:
        client.complete("hi")
    msg = str(err.value)
    assert "HTTP 401" in msg and "Incorrect API key provided" in msg and "\n" not in msg and KEY not in msg
    assert len(srv.requests) == 1  # no retry on 401


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"choices": []}', b'{"choices": [{"message": {}}]}'])
def test_client_malformed_response(fake_chat, body):
    srv = fake_chat(lambda doc: (200, body, {}))
    with pytest.raises(InputError, match="malformed response"):
        ChatClient(srv.url, "m", KEY).complete("hi")


def test_client_unreachable_endpoint():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InputError, match="cannot reach chat endpoint"):
        ChatClient(f"http://127.0.0.1:{port}/v1", "m", timeout_s=5).complete("hi")


def test_client_rejects_bad_url():
    with pytest.raises(InputError, match="http"):
        ChatClient("ftp://x", "m")


def test_client_accepts_list_content(fake_chat):
    srv = fake_chat(lambda doc: (200, json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                                                {"type": "text", "text": "b"}]}}]}
    ).encode(), {}))
    assert ChatClient(srv.url, "m").complete("hi") == "ab"


# --------------------------------------------------------------------------- LLM namer


def test_mllm_namer_names_each_visible_part(fake_chat):
    answers = iter(['{"name": "Base"}', '{"name": "knob"}'])
    srv = fake_chat(lambda doc: ok(next(answers)))
    shape, labels = two_boxes()
    namer = MLLMNamer(ChatClient(srv.url, "gpt-4o", KEY), n_views=2, size=64)
    assert isinstance(namer, PartNamer) and not namer.offline
    names = namer.name_parts(shape, labels, category="cabinet")
    assert names == ["base", "knob"] and namer.named_offline == []
    assert namer.namer_id == "mllm-v1:gpt-4o"
    for req in srv.requests:
        text, img = req["json"]["messages"][0]["content"]
        assert "a cabinet" in text["text"]
        im = decode_data_url(img["image_url"]["url"])
        assert im.size[0] > im.size[1]  # two views side by side


def test_mllm_namer_falls_back_for_hidden_parts_and_empty_answers(fake_chat):
    srv = fake_chat(lambda doc: ok("   "))  # the model says nothing usable
    shape, labels = two_boxes()
    lab = labels.copy()
    lab[lab == 1] = 2  # label 1 is empty: never sent
    names = MLLMNamer(ChatClient(srv.url, "m"), n_views=2, size=48).name_parts(shape, lab)
    assert names[1] == "empty part" and names[0] == "body"
    assert len(srv.requests) == 2
