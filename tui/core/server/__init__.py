"""The token-counting HTTP service behind ``tokdeck serve`` (aiohttp).

Public API:

    app = make_app(ServeSettings(auth_token=None, max_body_bytes=10 << 20), registry=None)
    serve(ServeSettings(host="127.0.0.1", port=8080))     # blocks until SIGINT/SIGTERM
    await serve_async(settings, stop=event)                # the same, inside a running loop

Endpoints (JSON in and out; errors are ``{"error": {"message", "type"}}`` with a 4xx/5xx status):
    POST /calculate        {"text" | "messages", "model_name" | "tokenizer", "specials"?}
    POST /batch-calculate  {"texts": [...], "model_name" | "tokenizer", "specials"?}
    GET  /models           tokenizers, the model names and patterns each serves, chat method
    GET  /health           liveness; open even when a bearer token is required
"""

from .app import OPEN_PATHS, ServeSettings, make_app
from .requests import ApiError
from .run import is_loopback, serve, serve_async

__all__ = ["OPEN_PATHS", "ApiError", "ServeSettings", "is_loopback", "make_app", "serve", "serve_async"]
