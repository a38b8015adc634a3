"""The models an endpoint serves: ``GET /v1/models`` (for the dashboard's "Discover models")."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from ..errors import TokdeckError
from .client import REDIRECTS, redirect_reason
from .engine import endpoint_url, redact_url, ssl_setting


async def fetch_models(base_url: str, headers: dict[str, str] | None = None, timeout: float = 10.0,
                       insecure: bool = False, ca_bundle: str | None = None, *,
                       url_label: str = "") -> tuple[int, bytes]:
    """GET /v1/models: (HTTP status, body). TokdeckError, one line with the URL shown without
    credentials, when the endpoint cannot be reached; ``url_label`` prefixes an invalid-URL error."""
    shown = redact_url(base_url)
    try:
        connector = aiohttp.TCPConnector(ssl=ssl_setting(base_url, insecure, ca_bundle))
        async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                         timeout=aiohttp.ClientTimeout(total=timeout + 5, sock_connect=timeout)) as s:
            url = endpoint_url(base_url, "/v1/models")
            async with s.get(url, headers=headers or {}, allow_redirects=False) as resp:
                if resp.status in REDIRECTS:  # not followed: the headers (the key) would go with it
                    raise TokdeckError(f"{shown}/v1/models: {redirect_reason(url, resp.status, resp.headers.get('Location'))}")
                return resp.status, await resp.read()
    except aiohttp.InvalidURL:
        raise TokdeckError(f"{url_label}{shown}: not a valid URL") from None
    except (aiohttp.ClientConnectorError, aiohttp.ClientOSError, OSError) as exc:
        reason = getattr(getattr(exc, "os_error", None), "strerror", None) or str(exc) or type(exc).__name__
        raise TokdeckError(f"cannot reach {shown}: {' '.join(str(reason).split())}") from None
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
        raise TokdeckError(f"cannot reach {shown}: no answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise TokdeckError(f"cannot reach {shown}: {type(exc).__name__}: {exc}") from None


async def list_models(base_url: str, headers: dict[str, str] | None = None, timeout: float = 10.0,
                      insecure: bool = False, ca_bundle: str | None = None) -> list[str]:
    """The ids of ``data[]`` in GET /v1/models; TokdeckError (one line, URL without credentials)."""
    shown = redact_url(base_url)
    status, body = await fetch_models(base_url, headers, timeout, insecure, ca_bundle)
    if status != 200:
        hint = ": check the API key" if status in (401, 403) else ""
        raise TokdeckError(f"{shown}/v1/models answered HTTP {status}{hint}")
    try:
        data = orjson.loads(body).get("data") or []
    except (orjson.JSONDecodeError, AttributeError):
        raise TokdeckError(f"{shown}/v1/models: not an OpenAI model list") from None
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
