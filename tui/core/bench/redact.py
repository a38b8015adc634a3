"""What a benchmark shows or saves of outside text: one line, bounded, valid UTF-8, secrets removed.

Failure reasons quote servers (error bodies, chunks, redirect targets, exception messages), and a
server may echo the API key or a header it was sent. ``Redactor`` removes them; ``clip`` makes
any text a safe one-line excerpt (orjson refuses to save the lone surrogates that undecodable
header bytes become); ``redact_url`` drops ``user:password@`` from a URL.
"""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "[redacted]"
ELLIPSIS = "…"
#: shorter header values are not treated as secrets: masking "ml" or "1" everywhere would
#: garble reasons without hiding anything
MIN_SECRET = 4
#: a secret of at least this length is masked wherever it appears; a shorter one only as a whole
#: word (so a 5-letter value does not eat the middle of unrelated words)
ANYWHERE = 12


def clip(text: str, limit: int) -> str:
    """``text`` on one line (whitespace runs collapsed), at most ``limit`` characters; a cut ends
    in "…", so a secret cut in two is still recognised by :meth:`Redactor.redact`. Characters
    that are not printable (escape sequences a server sent to a terminal, bidi overrides) and
    lone surrogates (undecodable bytes: orjson cannot save them) become "?"."""
    head = text[: limit * 4 + 16]  # never collapse megabytes to show a few hundred characters
    s = " ".join(head.split())
    if len(s) > limit or len(head) < len(text):
        s = s[: limit - 1] + ELLIPSIS
    if not s.isprintable():
        s = "".join(c if c.isprintable() else "?" for c in s)
    if not s.isascii():
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def redact_url(url: str) -> str:
    """The URL without any user:password part (never saved or printed)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        if "@" in parts.netloc:  # keep the host exactly as written ([::1] keeps its brackets)
            parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        return urlunsplit(parts)
    except ValueError:  # not a URL (a bad port, an unclosed IPv6 bracket): show none of it
        return "(an invalid URL)"


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class Redactor:
    """Masks secrets (an API key, header values, a URL password) in text to be shown or saved."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found: set[str] = set()
        for value in secrets:
            value = (value or "").strip()
            if len(value) < MIN_SECRET:
                continue
            found.add(value)
            scheme, _, credentials = value.partition(" ")  # "Bearer KEY", "Basic ...": the key alone too
            if scheme and len(credentials.strip()) >= MIN_SECRET:
                found.add(credentials.strip())
        self.secrets = tuple(sorted(found, key=len, reverse=True))  # longest first: "Bearer KEY" before "KEY"
        words = [re.escape(s) for s in self.secrets if len(s) < ANYWHERE]
        self._words = re.compile(r"(?<![0-9A-Za-z])(?:" + "|".join(words) + r")(?![0-9A-Za-z])") if words else None

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def redact(self, text: str) -> str:
        if not self.secrets or not text:
            return text
        for s in self.secrets:
            if len(s) >= ANYWHERE and s in text:
                text = text.replace(s, MASK)
        if self._words is not None:
            text = self._words.sub(MASK, text)
        if text.endswith(ELLIPSIS):
            # a clipped excerpt may end inside a secret: mask the start of it that remains
            body = text[:-1]
            for s in self.secrets:
                for n in range(len(s) - 1, MIN_SECRET - 1, -1):
                    if body.endswith(s[:n]):
                        return body[:-n] + MASK + ELLIPSIS
        return text
