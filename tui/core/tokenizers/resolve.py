"""Model names to tokenizers: what the benchmark, the service and the budget use.

Order of resolution (case-insensitive; an ``org/`` prefix is allowed everywhere):
1. user aliases (``[tokenizers.aliases]`` in the config; exact names or glob patterns);
2. a tokenizer id itself (``qwen3``, or a Hugging Face cache entry ``Qwen/Qwen3-8B``);
3. OpenAI model names as tiktoken maps them (``gpt-4o`` -> o200k_base, ``gpt-oss-*`` ->
   o200k_harmony, ``gpt-4`` -> cl100k_base, ...);
4. families: ``qwen*``, ``deepseek*``, ``llama-3*``, ``llama-2*``, ``mistral-nemo``/``-large``/``-small``,
   ``gemma-3*``, ``claude-*``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ..errors import TokenizerError
from .registry import Registry, default_registry

FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("qwen3", ("qwen*", "qwq*")),
    ("deepseek-v3", ("deepseek*",)),
    ("llama3", ("llama-3*", "llama3*", "meta-llama-3*")),
    ("llama2", ("llama-2*", "llama2*")),
    ("mistral-tekken", ("mistral-nemo*", "open-mistral-nemo*", "mistral-large*", "mistral-small*",
                        "ministral*", "pixtral*")),
    ("gemma3", ("gemma-3*", "gemma3*")),
    ("claude-legacy", ("claude*",)),
)

# tiktoken encodings that tokdeck serves under another id
_ENCODING_IDS = {"gpt2": "r50k_base", "p50k_edit": "p50k_base"}


@dataclass(frozen=True)
class Resolution:
    model: str
    tokenizer_id: str
    via: str  # alias | tokenizer-id | openai | family
    approximate: bool = False


def _bare(model: str) -> str:
    return model.strip().rsplit("/", 1)[-1].lower()


def _openai_encoding(name: str) -> str | None:
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:  # pragma: no cover - tiktoken is a dependency
        return None
    try:
        enc = encoding_name_for_model(name)
    except KeyError:
        return None
    return _ENCODING_IDS.get(enc, enc)


def _alias(name: str, reg: Registry) -> tuple[str, str] | None:
    """The first user alias matching ``name``: (its pattern, its target tokenizer id)."""
    lower, bare = name.lower(), _bare(name)
    for pattern, target in reg.aliases.items():
        p = pattern.lower()
        if lower == p or bare == p or fnmatch.fnmatchcase(lower, p) or fnmatch.fnmatchcase(bare, p):
            return pattern, target
    return None


def resolve_model(model: str, registry: Registry | None = None) -> Resolution:
    """The tokenizer serving ``model``; raises TokenizerError when nothing matches, or when the
    alias that matches names a tokenizer that does not exist."""
    reg = registry or default_registry()
    name = model.strip()
    if not name:
        raise TokenizerError("empty model name")
    lower, bare = name.lower(), _bare(name)

    def made(tid: str, via: str) -> Resolution:
        info = reg.info(tid)
        return Resolution(model=name, tokenizer_id=tid, via=via, approximate=info.approximate)

    alias = _alias(name, reg)
    if alias is not None:
        pattern, target = alias
        try:
            return made(target, "alias")
        except TokenizerError as exc:
            raise TokenizerError(f"model {name!r} matches the alias {pattern!r} -> {target!r} "
                                 f"([tokenizers.aliases] in the config), which cannot be used: {exc}") from None

    ids = {tid.lower(): tid for tid in reg.ids(include_discovered=False)}
    if lower in ids:
        return made(ids[lower], "tokenizer-id")
    ids = {tid.lower(): tid for tid in reg.ids()}
    if lower in ids:
        return made(ids[lower], "tokenizer-id")

    if "/" not in name or lower.startswith("openai/"):
        enc = _openai_encoding(bare)
        if enc:
            return made(enc, "openai")

    for tid, patterns in FAMILIES:
        if any(fnmatch.fnmatchcase(bare, p) for p in patterns):
            return made(tid, "family")

    raise TokenizerError(
        f"no tokenizer known for model {name!r}: pass a tokenizer id, or add an alias under "
        "[tokenizers.aliases] in the config"
    )


def resolve_tokenizer_id(name: str, registry: Registry | None = None) -> str:
    """The tokenizer id for ``name``: a tokenizer id or a model name (what ``-t``/``--tokenizer`` take)."""
    reg = registry or default_registry()
    if _alias(name.strip(), reg) is not None:
        return resolve_model(name, reg).tokenizer_id  # a broken alias is the error to show
    try:
        return resolve_model(name, reg).tokenizer_id
    except TokenizerError:
        pass
    try:
        reg.info(name)
    except TokenizerError as exc:  # the unknown-tokenizer message carries a suggestion
        raise TokenizerError(f"{exc} (model names work too; aliases go under [tokenizers.aliases])") from None
    raise AssertionError("unreachable: a known tokenizer id always resolves")  # pragma: no cover
