"""What an endpoint's base URL, HTTP headers and API key may be, and which key a request sends:
one rule for the flags, the config's profiles and the Bench pane.

Each ``*_problem`` function returns why a value is refused, as words that follow its name
("--base-url must start with http:// or https://", "profiles.base_url must ..."), or None when it
is fine. They never repeat a credential: a URL is shown without its ``user:password@`` part.
:func:`resolve_api_key` is the one lookup of the key (a run, F7 and the pane's profile line).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

#: the APIs a benchmark speaks: openai-chat (POST /v1/chat/completions), openai (POST /v1/completions)
BACKENDS = ("openai-chat", "openai")

#: RFC 9110 token characters: what a header name may be made of
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown_url(url: str) -> str:
    """``url`` for a message: without anything up to its last ``@`` (no credentials, even in text
    that is not a URL at all)."""
    head, sep, tail = url.partition("://")
    return f"{head}{sep}{tail.rsplit('@', 1)[-1]}" if sep and "@" not in head else url.rsplit("@", 1)[-1]


def control_character(text: str) -> str | None:
    """The first control character of ``text`` as ``U+000A (a newline)``, or None."""
    m = _CONTROL.search(text)
    if m is None:
        return None
    names = {"\n": " (a newline)", "\r": " (a carriage return)", "\t": " (a tab)", "\x00": " (a NUL byte)"}
    return f"U+{ord(m.group()):04X}{names.get(m.group(), '')}"


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the root of an OpenAI-compatible endpoint, or None."""
    import yarl  # what aiohttp parses URLs with (imported here: `tokdeck --help` stays light)

    if not url.strip():
        return "must not be empty"
    if _CONTROL.search(url) or re.search(r"\s", url):
        return "must not contain spaces or control characters"
    shown = shown_url(url)  # parsed first without credentials: parser messages may quote the netloc
    try:
        parts = urlsplit(shown)
        _ = parts.port  # raises ValueError for a port that is not a number in 0-65535
        yarl.URL(shown)  # stricter about hosts than urlsplit ("http://[::1]x")
    except (ValueError, IndexError) as exc:
        return f"is not a valid URL ({exc})"
    try:
        yarl.URL(url)  # yarl 1.x raises IndexError for "http://[::1]@"
        urlsplit(url)  # "http://[u:p@[::1]": a bracket before the @ (the message would quote the password)
    except (ValueError, IndexError):
        return "is not a valid URL (its user:password@ part)"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host name"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "must not have a ?query or #fragment (the API path is appended to it)"
    return None


def metrics_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a server's Prometheus metrics page (a base URL's rules, but a ?query
    may follow the path), or None."""
    head, _, query = url.partition("?")
    if "#" in url:
        return "must not have a #fragment"
    problem = base_url_problem(head)
    if problem is None and query and (_CONTROL.search(query) or re.search(r"\s", query)):
        return "must not contain spaces or control characters"
    return problem


def has_credentials(url: str) -> bool:
    """True when ``url`` carries ``user[:password]@`` (sent as HTTP Basic authentication)."""
    return "@" in urlsplit(url).netloc


def header_name_problem(name: str) -> str | None:
    if not _TOKEN.fullmatch(name):
        return "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, no spaces)"
    return None


def header_value_problem(value: str) -> str | None:
    bad = control_character(value)
    return f"must not contain control characters (found {bad})" if bad else None


def env_name_problem(name: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return "must be an environment variable name (letters, digits and _)"
    return None


def api_key_problem(key: str) -> str | None:
    """Why ``key`` cannot go into an ``Authorization`` header (never repeating it), or None."""
    bad = control_character(key)
    return f"contains a control character ({bad}): remove it" if bad else None


@dataclass(frozen=True)
class ApiKey:
    """The API key requests send, and where it comes from (shown; the key itself never is)."""

    #: the environment variable it is read from; None: stored in a config profile
    variable: str | None
    value: str | None = field(default=None, repr=False)
    #: the variable was named (--api-key-env, a profile's api_key_env): it must be set
    named: bool = False

    @property
    def source(self) -> str:
        return f"${self.variable}" if self.variable else "the profile's stored key"

    def required(self) -> str | None:
        """The key (None: no key, requests go without one); TokdeckError when a named variable is
        unset or empty."""
        from .errors import TokdeckError

        if self.named and self.value is None:
            raise TokdeckError(f"--api-key-env: environment variable {self.variable} is not set or empty")
        return self.value


def resolve_api_key(variable: str | None, stored: str | None = None,
                    environ: Mapping[str, str] | None = None) -> ApiKey:
    """The key of a request: from the named environment variable, else the profile's stored key,
    else ``$OPENAI_API_KEY`` (unset there: no key)."""
    environ = os.environ if environ is None else environ
    if variable:
        return ApiKey(variable, environ.get(variable) or None, named=True)
    if stored:
        return ApiKey(None, stored)
    return ApiKey("OPENAI_API_KEY", environ.get("OPENAI_API_KEY") or None)
