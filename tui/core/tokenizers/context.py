"""Context windows of known models, for the token budget.

``context_window(model, overrides)`` -> ContextWindow or None. Names match case-insensitively,
with or without an ``org/`` prefix, by glob pattern; the first matching row wins (specific
before general). ``[tokens] context_windows`` in the config adds or overrides entries
(``{ "acme-chat-*" = "65536" }``; values are whole numbers written as strings) and is
consulted first.

Where a vendor quotes "128k" for an open-weights model it means 131,072 positions
(its config's max_position_embeddings); OpenAI's 128k is 128,000.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Mapping

from ..errors import ConfigError


@dataclass(frozen=True)
class ContextWindow:
    model: str
    tokens: int
    source: str  # "table" | "config"
    note: str | None = None


#: (patterns, tokens, note) — the first row whose pattern matches wins
KNOWN_WINDOWS: tuple[tuple[tuple[str, ...], int, str | None], ...] = (
    (("gpt-4.1*",), 1_047_576, None),
    (("gpt-4o*", "chatgpt-4o*"), 128_000, None),
    (("gpt-5*",), 400_000, None),
    (("gpt-oss*",), 131_072, None),
    (("o1*", "o3*", "o4-mini*"), 200_000, None),
    (("gpt-4-turbo*", "gpt-4-1106*", "gpt-4-0125*"), 128_000, None),
    (("gpt-4-32k*",), 32_768, None),
    (("gpt-4", "gpt-4-0613", "gpt-4-0314"), 8_192, None),
    (("gpt-3.5-turbo*",), 16_385, None),
    (("llama-3.1*", "llama-3.2*", "llama-3.3*", "llama3.1*", "llama3.2*", "llama3.3*",
      "meta-llama-3.1*"), 131_072, None),
    (("llama-3*", "llama3*", "meta-llama-3*"), 8_192, None),
    (("llama-2*", "llama2*"), 4_096, None),
    (("qwen2.5*", "qwen2*"), 32_768, "131,072 with YaRN rope scaling enabled"),
    (("qwen3*", "qwq*"), 32_768, "native window; 131,072 with YaRN rope scaling enabled"),
    (("deepseek*",), 131_072, "DeepSeek-V3/R1 serve 128k; their config allows 163,840"),
    (("mistral-nemo*", "open-mistral-nemo*"), 131_072, None),
    (("mistral-large*",), 131_072, None),
    (("mistral-small*",), 32_768, "Mistral Small 3; later 3.x releases serve 128k"),
    (("gemma-3-1b*", "gemma3-1b*"), 32_768, None),
    (("gemma-3*", "gemma3*"), 131_072, None),
    (("claude*",), 200_000, None),
)


def _bare(model: str) -> str:
    return model.strip().rsplit("/", 1)[-1].lower()


def _matches(pattern: str, model: str) -> bool:
    p = pattern.lower()
    full, bare = model.strip().lower(), _bare(model)
    return fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(bare, p)


def parse_overrides(raw: Mapping[str, str]) -> dict[str, int]:
    """The config's ``context_windows`` table as numbers; ConfigError on a bad value."""
    out = {}
    for pattern, value in raw.items():
        text = str(value).replace("_", "").replace(",", "").strip()
        if not text.isdigit() or int(text) <= 0:
            raise ConfigError(f"tokens.context_windows[{pattern!r}] must be a positive whole number, not {value!r}")
        out[pattern] = int(text)
    return out


def context_window(model: str, overrides: Mapping[str, int] | None = None) -> ContextWindow | None:
    """The context window of ``model``, or None when it is not known."""
    for pattern, tokens in (overrides or {}).items():
        if _matches(pattern, model):
            return ContextWindow(model, tokens, "config")
    for patterns, tokens, note in KNOWN_WINDOWS:
        if any(_matches(p, model) for p in patterns):
            return ContextWindow(model, tokens, "table", note)
    return None


@dataclass(frozen=True)
class Budget:
    """A count against a context window with output tokens reserved."""

    tokens: int
    window: int
    reserved: int

    @property
    def available(self) -> int:
        return max(0, self.window - self.reserved)

    @property
    def fraction(self) -> float:
        """Prompt plus reserved output as a fraction of the window (may exceed 1)."""
        return (self.tokens + self.reserved) / self.window if self.window else 0.0

    @property
    def over(self) -> bool:
        return self.tokens + self.reserved > self.window

    @property
    def remaining(self) -> int:
        return self.window - self.reserved - self.tokens
