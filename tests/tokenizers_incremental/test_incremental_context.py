"""Context windows of known models, and the config override."""

import pytest

from tui.core.errors import ConfigError
from tui.core.tokenizers.context import Budget, context_window, parse_overrides


@pytest.mark.parametrize("model,tokens", [
    ("gpt-4o", 128_000), ("gpt-4o-mini", 128_000), ("gpt-4.1-mini", 1_047_576), ("gpt-5", 400_000),
    ("o3-mini", 200_000), ("o4-mini", 200_000), ("gpt-4", 8_192), ("gpt-4-turbo", 128_000),
    ("gpt-3.5-turbo", 16_385), ("openai/gpt-oss-120b", 131_072), ("meta-llama/Llama-3.1-8B-Instruct", 131_072),
    ("Llama-3.3-70B", 131_072), ("meta-llama/Meta-Llama-3-8B", 8_192), ("llama-2-7b", 4_096),
    ("Qwen/Qwen2.5-7B-Instruct", 32_768), ("Qwen/Qwen3-8B", 32_768), ("deepseek-ai/DeepSeek-V3", 131_072),
    ("deepseek-r1", 131_072), ("mistral-nemo-instruct", 131_072), ("mistral-large-2411", 131_072),
    ("mistral-small-2501", 32_768), ("google/gemma-3-27b-it", 131_072), ("gemma-3-1b-it", 32_768),
    ("claude-sonnet-4", 200_000),
])
def test_known_context_windows(model, tokens):
    window = context_window(model)
    assert window is not None and window.tokens == tokens and window.source == "table"


def test_unknown_model_and_overrides():
    assert context_window("acme-chat-7b") is None
    overrides = parse_overrides({"acme-chat-*": "65_536", "gpt-4o": "100000"})
    assert context_window("acme-chat-7b", overrides).tokens == 65_536
    assert context_window("GPT-4o", overrides).source == "config"
    with pytest.raises(ConfigError, match="positive whole number"):
        parse_overrides({"x": "lots"})


def test_budget_arithmetic():
    b = Budget(tokens=1000, window=4096, reserved=1024)
    assert b.remaining == 2072 and not b.over and b.fraction == pytest.approx(2024 / 4096)
    assert Budget(tokens=4000, window=4096, reserved=1024).over
