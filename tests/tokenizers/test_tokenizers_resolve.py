"""Model names resolve to tokenizers; aliases come first."""

import pytest

from tui.core.errors import TokenizerError
from tui.core.tokenizers import Registry, resolve_model

CASES = {
    "gpt-4o": "o200k_base",
    "gpt-4o-mini-2024-07-18": "o200k_base",
    "gpt-4.1": "o200k_base",
    "gpt-5": "o200k_base",
    "o3-mini": "o200k_base",
    "gpt-oss-120b": "o200k_harmony",
    "openai/gpt-oss-20b": "o200k_harmony",
    "gpt-4": "cl100k_base",
    "gpt-3.5-turbo-0125": "cl100k_base",
    "text-embedding-3-small": "cl100k_base",
    "text-davinci-003": "p50k_base",
    "Qwen/Qwen2.5-7B-Instruct": "qwen3",
    "qwen3-235b-a22b": "qwen3",
    "deepseek-ai/DeepSeek-R1": "deepseek-v3",
    "deepseek-chat": "deepseek-v3",
    "meta-llama/Llama-3.1-8B-Instruct": "llama3",
    "LLAMA-3.3-70B": "llama3",
    "meta-llama/Llama-2-7b-chat-hf": "llama2",
    "mistralai/Mistral-Nemo-Instruct-2407": "mistral-tekken",
    "mistral-large-latest": "mistral-tekken",
    "mistral-small-2501": "mistral-tekken",
    "google/gemma-3-27b-it": "gemma3",
    "claude-3-5-sonnet-20241022": "claude-legacy",
    "qwen3": "qwen3",
}


@pytest.mark.parametrize("model,expected", CASES.items())
def test_known_models(model, expected):
    assert resolve_model(model, Registry(discover=False)).tokenizer_id == expected


def test_claude_is_marked_approximate():
    assert resolve_model("claude-sonnet-4", Registry(discover=False)).approximate


def test_aliases_win_and_accept_globs():
    reg = Registry(discover=False, aliases={"acme-chat-*": "qwen3", "gpt-4o": "cl100k_base"})
    assert resolve_model("acme/ACME-chat-v2", reg).tokenizer_id == "qwen3"
    assert resolve_model("gpt-4o", reg).via == "alias"
    assert resolve_model("gpt-4o", reg).tokenizer_id == "cl100k_base"


def test_unknown_model_is_a_clear_error():
    with pytest.raises(TokenizerError, match="no tokenizer known for model 'mystery-7b'"):
        resolve_model("mystery-7b", Registry(discover=False))


def test_aliases_from_config(isolated_env):
    from tui.core.tokenizers import default_registry

    cfg = isolated_env / "config" / "tokdeck" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[tokenizers]\naliases = { "house-*" = "llama3" }\n')
    assert resolve_model("house-model-1", default_registry()).tokenizer_id == "llama3"


def test_resolve_tokenizer_id_takes_ids_and_model_names():
    from tui.core.tokenizers import resolve_tokenizer_id

    reg = Registry(discover=False)
    assert resolve_tokenizer_id("cl100k_base", reg) == "cl100k_base"
    assert resolve_tokenizer_id("gpt-4o", reg) == "o200k_base"
    assert resolve_tokenizer_id("Qwen/Qwen3-8B", reg) == "qwen3"
    with pytest.raises(TokenizerError, match=r"unknown tokenizer 'o200k'.*did you mean 'o200k_base'.*model names work too"):
        resolve_tokenizer_id("o200k", reg)
