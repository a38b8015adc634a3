"""User-facing errors: one line, no traceback. The CLI prints them as `tokdeck: error: ...`."""


class TokdeckError(Exception):
    """An error caused by input or environment that the user can fix; str() is one line."""


class TokenizerError(TokdeckError):
    """A tokenizer is unknown, cannot be loaded, or failed verification."""


class ConfigError(TokdeckError):
    """The user config file is invalid."""
