"""A minimal client for an OpenAI-compatible Chat Completions endpoint (text + images in, text out).

Standard library only (:mod:`urllib.request`), so the multimodal LLM teacher adds no
dependency. It speaks the public protocol: ``POST {base_url}/chat/completions`` with
``{"model", "messages": [{"role": "user", "content": [{"type": "text", ...},
{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]}],
"temperature": 0, "max_tokens"}`` and an ``Authorization: Bearer <key>`` header when a
key is set. Any server speaking it works: OpenAI (GPT-4o, the model SAMPart3D names
parts with), Azure-style proxies, vLLM, llama.cpp or Ollama serving a vision model.

The API key is read from an environment variable (``OPENAI_API_KEY`` unless told
otherwise), never from the command line, and never appears in messages. Every failure a
user can act on (endpoint unreachable, an HTTP error, a malformed answer) is raised as
one-line :class:`~crossdistill.errors.InputError`; 429 and 5xx answers and time-outs are
retried a bounded number of times with exponential back-off (``Retry-After`` honoured).

Example:
    >>> client = ChatClient("http://127.0.0.1:8000/v1", model="gpt-4o")
    >>> client.complete("What is this?", [np.zeros((8, 8, 3), np.uint8)])  # doctest: +SKIP
    '{"name": "lid"}'
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossdistill.errors import InputError

__all__ = ["ChatClient", "DEFAULT_BASE_URL", "DEFAULT_KEY_ENV", "BASE_URL_ENV", "png_data_url"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: environment variable holding the API key (name configurable per client)
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: environment variable overriding the default base URL
BASE_URL_ENV = "OPENAI_BASE_URL"
#: HTTP statuses worth retrying: rate limit and server-side failures
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 30.0


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def png_data_url(image: np.ndarray | bytes) -> str:
    """``data:image/png;base64,...`` URL of an (H, W, 3) / (H, W) uint8 image or of PNG bytes."""
    if isinstance(image, bytes | bytearray):
        data = bytes(image)
    else:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(np.asarray(image, dtype=np.uint8))).save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _error_detail(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's start."""
    try:
        doc = json.loads(body.decode("utf-8", "replace"))
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return _one_line(err["message"])
        if isinstance(err, str):
            return _one_line(err)
    except (ValueError, AttributeError):
        pass
    return _one_line(body.decode("utf-8", "replace"), 120)


def _message_text(doc: Any) -> str:
    """``choices[0].message.content`` as text (string content or a list of text parts)."""
    content = doc["choices"][0]["message"]["content"]
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", None)]
        if texts:
            return "".join(texts)
    raise TypeError("content is neither a string nor a list of text parts")


class ChatClient:
    """OpenAI-compatible chat client: one user message of text and images, one text answer.

    Args:
        base_url: endpoint root, e.g. ``https://api.openai.com/v1`` (``/chat/completions`` is appended).
        model: model name sent with every request (e.g. ``gpt-4o``).
        api_key: bearer token, or None to send no ``Authorization`` header (local servers).
        timeout_s: per-request socket time-out in seconds.
        retries: extra attempts after a 429 / 5xx answer or a time-out (0 = no retry).
        backoff_s: first back-off in seconds, doubled per retry (a ``Retry-After`` header,
            capped at 30 s, takes precedence).
        sleep: the sleep function (tests pass a no-op).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 60.0,
                 retries: int = 3, backoff_s: float = 1.0, sleep: Callable[[float], None] = time.sleep):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise InputError(f"chat endpoint must be an http(s) URL (got {base_url!r})")
        if not model:
            raise InputError("a chat model name is needed (e.g. --model gpt-4o)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key or None
        self.timeout_s = float(timeout_s)
        self.retries = max(0, int(retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self._sleep = sleep

    @classmethod
    def from_env(cls, model: str, base_url: str | None = None, api_key_env: str = DEFAULT_KEY_ENV,
                 **kwargs: Any) -> "ChatClient":
        """Client whose key comes from ``$api_key_env`` and whose URL defaults to ``$OPENAI_BASE_URL``.

        ``base_url`` None means ``$OPENAI_BASE_URL``, else :data:`DEFAULT_BASE_URL`.
        """
        url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        return cls(url, model, os.environ.get(api_key_env) or None, **kwargs)

    @property
    def url(self) -> str:
        """The full request URL."""
        return f"{self.base_url}/chat/completions"

    @property
    def has_key(self) -> bool:
        return self._api_key is not None

    def __repr__(self) -> str:  # never show the key
        return f"ChatClient({self.base_url!r}, model={self.model!r}, key={'set' if self.has_key else 'none'})"

    def request_body(self, text: str, images: Sequence[np.ndarray | bytes] = (), max_tokens: int = 50) -> dict:
        """The JSON body of one request (a single user message: text first, then the images)."""
        content: list[dict] = [{"type": "text", "text": text}]
        content += [{"type": "image_url", "image_url": {"url": png_data_url(im)}} for im in images]
        return {"model": self.model, "messages": [{"role": "user", "content": content}],
                "temperature": 0, "max_tokens": int(max_tokens)}

    def complete(self, text: str, images: Sequence[np.ndarray | bytes] = (), max_tokens: int = 50) -> str:
        """Send one user message and return the assistant's text.

        Args:
            text: the prompt.
            images: (H, W, 3) uint8 arrays or PNG bytes, sent as PNG data URLs after the text.
            max_tokens: answer length limit.

        Raises:
            InputError: endpoint unreachable, HTTP error (status and the server's message,
                after the retries for 429 / 5xx), or a response without
                ``choices[0].message.content``.
        """
        data = json.dumps(self.request_body(text, images, max_tokens)).encode("utf-8")
        body = self._post(data)
        try:
            return _message_text(json.loads(body.decode("utf-8")))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise InputError(f"malformed response from {self.url}: expected JSON with choices[0].message.content, "
                             f"got {_one_line(body.decode('utf-8', 'replace'), 80)!r}") from None

    def _post(self, data: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "crossdistill-mllm/1"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) checked
                    return resp.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc.read() or b"")
                if exc.code in RETRY_STATUSES and not last:
                    self._sleep(self._delay(attempt, exc.headers.get("Retry-After")))
                    continue
                hint = " (check the API key variable, e.g. $OPENAI_API_KEY)" if exc.code in (401, 403) else ""
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise InputError(f"chat endpoint {self.url} answered HTTP {exc.code}{tries}: {detail}{hint}") from None
            except (urllib.error.URLError, TimeoutError) as exc:
                if not isinstance(exc, TimeoutError) and not isinstance(exc.reason, TimeoutError):
                    raise InputError(f"cannot reach chat endpoint {self.url}: {_one_line(exc.reason)}") from None
                if not last:
                    self._sleep(self._delay(attempt, None))
                    continue
                raise InputError(f"chat endpoint {self.url} timed out after {self.timeout_s:g} s "
                                 f"({attempt + 1} attempts)") from None
            except OSError as exc:  # connection reset mid-answer and the like
                raise InputError(f"cannot reach chat endpoint {self.url}: {_one_line(exc)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER_S)
            except ValueError:
                pass
        return self.backoff_s * (2.0 ** attempt)
