"""Offline tokenizers: bundled, discovered on the machine, or added by the user.

Public API (nothing here imports tiktoken or tokenizers until a tokenizer is loaded):

    reg = default_registry()                 # one per process; each tokenizer loads once
    reg.infos()                              # [TokenizerInfo], bundled + discovered
    tok = reg.get("cl100k_base")             # Tokenizer; TokenizerError (one line) if broken
    tok.count(text, specials="literal")      # the counting contract: see tui.core.tokenizers.base
    count_texts(reg, ["qwen3", "llama3"], text)   # [TokenCount], errors per row, never raises
    resolve_model("meta-llama/Llama-3.1-8B") # Resolution(tokenizer_id="llama3", via="family")
    resolve_tokenizer_id("gpt-4o")           # "o200k_base": an id or a model name, one-line error if neither
    add_to_store(path, tokenizer_id=None)    # `tokdeck tokenizers add`
    count_chat(tok, parse_messages(msgs))    # chat messages with template overhead (tui.core.tokenizers.chat)
    CountingService(reg)                     # all of the above in two more processes, for the dashboard
                                             # (tui.core.tokenizers.counting_client)
"""

from .base import SPECIAL_POLICIES, SpecialPolicy, TokenCount, Tokenizer, TokenizerInfo
from .chat import ChatCount, count_chat, parse_messages
from .counting import count_texts, load_many
from .registry import Registry, bundled_ids, default_registry
from .resolve import Resolution, resolve_model, resolve_tokenizer_id
from .store import add_to_store

__all__ = [
    "ChatCount", "count_chat", "parse_messages", "SPECIAL_POLICIES", "SpecialPolicy", "TokenCount", "Tokenizer", "TokenizerInfo", "Registry",
    "Resolution", "add_to_store", "bundled_ids", "count_texts", "default_registry", "load_many",
    "resolve_model", "resolve_tokenizer_id",
]
