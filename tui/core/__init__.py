"""tokdeck's logic, importable and testable without Textual.

Packages (imports point down only):
  tui.core.bench      - load runs against OpenAI-compatible endpoints, the simulator
  tui.core.datasets   - JSONL dataset formats, validation and statistics
  tui.core.server     - the token-counting HTTP service
  tui.core.tokenizers - offline tokenizers, discovery and model-name resolution

Shared modules: errors (user-facing one-line errors), paths (XDG locations), config (the typed user config),
endpoint (URL, header and API-key rules), numbers (numbers people type: one rule, one wording).
"""
