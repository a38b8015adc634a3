"""The models an endpoint serves: ``GET /v1/models`` (the run's start-up check, and the
dashboard's "Discover models").

The answer is outside input: anything but ``{"data": [{"id": "...", ...}, ...]}`` is reported
as not a model list, entries without a non-empty string ``id`` are skipped, and the body is read
up to ``MAX_BODY`` bytes. A silent server fails after ``timeout`` seconds without data.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import orjson

from ..endpoint import base_url_problem, shown_url
from ..errors import TokdeckError
from .client import REDIRECTS, redirect_reason
from .engine import endpoint_url, ssl_setting
from .redact import redact_url

MAX_BODY = 16 * 1024 * 1024
#: the longest a whole answer may take beyond ``timeout``: a server sending a byte now and then
#: never trips the timeout between reads
TRICKLE_GRACE_S = 5.0


@dataclass(frozen=True)
class ModelList:
    ids: tuple[str, ...]
    #: the tokenizer a tokdeck simulator names for its first model (``tokdeck_tokenizer``)
    sim_tokenizer: str | None = None


def parse_models(body: bytes) -> ModelList:
    """The model ids of a ``GET /v1/models`` answer; ValueError saying why it is not a model list."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    data = doc.get("data")
    if not isinstance(data, list):
        raise ValueError('no "data" array')
    entries = [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"].strip()]
    if data and not entries:
        raise ValueError('no entry of "data" has a string "id"')
    tokenizer = entries[0].get("tokdeck_tokenizer") if entries else None
    return ModelList(tuple(m["id"] for m in entries), tokenizer if isinstance(tokenizer, str) else None)


async def fetch_models(base_url: str, headers: dict[str, str] | None = None, timeout: float = 10.0,
                       insecure: bool = False, ca_bundle: str | None = None, *,
                       url_label: str = "") -> tuple[int, bytes]:
    """GET /v1/models: (HTTP status, body). TokdeckError, one line with the URL shown without
    credentials, when the endpoint cannot be reached, is silent for ``timeout`` seconds or answers
    more than ``MAX_BODY`` bytes; ``url_label`` prefixes an invalid-URL error."""
    problem = base_url_problem(base_url)
    if problem:
        raise TokdeckError(f"{url_label}{shown_url(base_url)} {problem}")
    shown = redact_url(base_url)
    try:
        connector = aiohttp.TCPConnector(ssl=ssl_setting(base_url, insecure, ca_bundle))
        limits = aiohttp.ClientTimeout(total=timeout + TRICKLE_GRACE_S, sock_connect=timeout, sock_read=timeout)
        async with aiohttp.ClientSession(connector=connector, trust_env=False, timeout=limits) as s:
            url = endpoint_url(base_url, "/v1/models")
            async with s.get(url, headers=headers or {}, allow_redirects=False) as resp:
                if resp.status in REDIRECTS:  # not followed: the headers (the key) would go with it
                    raise TokdeckError(f"{shown}/v1/models: {redirect_reason(url, resp.status, resp.headers.get('Location'))}")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise TokdeckError(f"{shown}/v1/models: the answer is larger than {MAX_BODY >> 20} MB")
                return resp.status, bytes(body)
    except aiohttp.InvalidURL:
        raise TokdeckError(f"{url_label}{shown}: not a valid URL") from None
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):  # before OSError: TimeoutError is one
        raise TokdeckError(f"cannot reach {shown}: no answer within {timeout:g} s") from None
    except (aiohttp.ClientConnectorError, aiohttp.ClientOSError, OSError) as exc:
        reason = getattr(getattr(exc, "os_error", None), "strerror", None) or str(exc) or type(exc).__name__
        raise TokdeckError(f"cannot reach {shown}: {' '.join(str(reason).split())}") from None
    except aiohttp.ClientError as exc:
        raise TokdeckError(f"cannot reach {shown}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    except ValueError as exc:  # aiohttp refusing a request it cannot send (a header, the URL)
        raise TokdeckError(f"cannot ask {shown}: {' '.join(str(exc).split())}") from None


async def list_models(base_url: str, headers: dict[str, str] | None = None, timeout: float = 10.0,
                      insecure: bool = False, ca_bundle: str | None = None) -> list[str]:
    """The ids of ``data[]`` in GET /v1/models; TokdeckError (one line, URL without credentials)."""
    shown = redact_url(base_url)
    status, body = await fetch_models(base_url, headers, timeout, insecure, ca_bundle)
    if status != 200:
        hint = ": check the API key" if status in (401, 403) else ""
        raise TokdeckError(f"{shown}/v1/models answered HTTP {status}{hint}")
    try:
        return list(parse_models(body).ids)
    except ValueError as exc:
        raise TokdeckError(f"{shown}/v1/models: not an OpenAI model list ({exc})") from None
