"""`tokdeck serve`: a token-counting HTTP service for other programs on the intranet."""

from __future__ import annotations

import argparse

from ..core.numbers import PORT, NumberRule, argparse_type

ORDER = 40

TOKEN_ENV = "TOKDECK_SERVE_TOKEN"


#: the smallest body limit that makes sense: a request with a short text is already ~100 bytes
MIN_BODY_MB = 1 / 1024
_body_mb = NumberRule(float, lo=MIN_BODY_MB, need=f"a finite number of MB, at least 1 KB ({MIN_BODY_MB:.5f})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve token counts over HTTP (POST /calculate, /batch-calculate; GET /models, /health)",
        description="A token-counting HTTP service (JSON). Binds 127.0.0.1 unless --host says otherwise. "
                    f"With a token (--auth-token or ${TOKEN_ENV}) every endpoint but /health needs "
                    "'Authorization: Bearer TOKEN'.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=argparse_type(PORT.parse),
                   default=8080, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument("--auth-token", metavar="TOKEN", default=None,
                   help=f"require this bearer token (prefer ${TOKEN_ENV}: arguments are visible in ps)")
    p.add_argument("--max-body-mb", type=argparse_type(_body_mb.parse), default=10.0, metavar="MB",
                   help="largest request body accepted, in MB (default 10; at least 1 KB); bigger gets 413, "
                        "however it is sent (Content-Length, chunked, compressed)")
    p.add_argument("--idle-timeout", type=argparse_type(NumberRule(float, lo=0.1, hi=3600, need="a number of seconds in [0.1, 3600]").parse),
                   default=30.0,
                   metavar="S", help="drop a request whose headers or body stop arriving for S seconds "
                                     "(default 30); a stalled body gets 408")
    p.add_argument("--preload", nargs="+", action="extend", default=[], metavar="ID",
                   help="tokenizer ids or model names to load before listening")
    p.add_argument("--workers", type=argparse_type(NumberRule(int, lo=1, hi=1024).parse), default=4, metavar="N",
                   help="threads per counting pool: one for short texts, one for long texts, chats "
                        "and batches (default 4 each)")
    p.add_argument("--access-log", action="store_true", help="log one line per request on stderr")
    p.set_defaults(run=run)


def run(args) -> int:
    import os

    from ..core.server import ServeSettings, serve

    token = args.auth_token if args.auth_token is not None else os.environ.get(TOKEN_ENV)
    settings = ServeSettings(
        host=args.host, port=args.port, auth_token=token or None,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024), idle_timeout_s=args.idle_timeout, workers=args.workers,
        preload=tuple(args.preload), access_log=args.access_log,
    )
    serve(settings)
    return 0
