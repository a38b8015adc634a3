"""The user config: one typed model, read from TOML, validated, written back atomically.

Location: ``$TOKDECK_CONFIG``, else ``$XDG_CONFIG_HOME/tokdeck/config.toml``. The file is
created with mode 0600 because profiles may hold API keys. Unknown keys and wrong types
are errors naming the file, the line and what is wrong.

Add a section by writing a frozen dataclass whose fields have defaults and the types
below (str, int, float, bool, str | None, int | None, tuple[str, ...], dict[str, str]),
and adding it as a field of ``Config``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import atomic_write_text, config_path


@dataclass(frozen=True)
class TokenizerSettings:
    #: model name (or glob pattern such as ``acme-*``) -> tokenizer id
    aliases: dict[str, str] = field(default_factory=dict)
    #: extra folders to look for tokenizers in (like TOKDECK_TOKENIZER_PATH)
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokensSettings:
    #: tokenizers shown in the Tokens pane and counted by `tokdeck count` by default
    #: (None: every bundled one)
    enabled: tuple[str, ...] | None = None
    reference: str = "o200k_base"
    specials: str = "literal"
    budget_model: str = "gpt-4o"
    reserved_output: int = 1024
    #: model name or glob pattern -> context window in tokens, as a string ("65536");
    #: overrides the built-in table of tui.core.tokenizers.context
    context_windows: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """An endpoint to benchmark: ``[[profiles]]`` tables in the config."""

    name: str = ""
    base_url: str = ""
    backend: str = "openai-chat"  # openai-chat | openai
    model: str | None = None
    #: the API key is read from this environment variable at run time ...
    api_key_env: str | None = None
    #: ... or stored here (the config file is 0600; never printed or saved in results)
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    insecure: bool = False  # skip TLS verification
    ca_bundle: str | None = None
    timeout_s: float = 600.0


def profile_api_key(profile: Profile, env: typing.Mapping[str, str] | None = None) -> str | None:
    """The key a request to ``profile`` sends: the stored one, else the named environment variable,
    else ``OPENAI_API_KEY`` (as `tokdeck bench` falls back); None when there is none."""
    env = os.environ if env is None else env
    if profile.api_key:
        return profile.api_key
    return env.get(profile.api_key_env or "OPENAI_API_KEY") or None


@dataclass(frozen=True)
class Config:
    tokenizers: TokenizerSettings = field(default_factory=TokenizerSettings)
    tokens: TokensSettings = field(default_factory=TokensSettings)
    profiles: tuple[Profile, ...] = ()
    path: Path | None = field(default=None, compare=False)
    #: problems worth a warning that do not stop loading (e.g. a stored key in a file others can read)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def profile(self, name: str) -> Profile:
        for p in self.profiles:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.profiles) or "none"
        raise ConfigError(f"no profile named {name!r} in {self.path} (profiles: {known})")


def _line_of(text: str, key: str) -> int | None:
    pat = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=', re.M)
    m = pat.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _where(path: Path, text: str, key: str) -> str:
    line = _line_of(text, key)
    return f"{path}:{line}" if line else str(path)


def _check(value: Any, hint: Any) -> Any:
    """Convert a TOML value to the annotated type or raise TypeError with what was expected."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(value, inner[0])
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError("a list of strings")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise TypeError("a table of strings")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError("a string")
        return value
    raise TypeError(f"a value of type {hint}")  # pragma: no cover - programming error


def section_from_table(cls: type, table: Any, name: str, path: Path, text: str):
    """Build a section dataclass from a TOML table, rejecting unknown keys and wrong types."""
    if not isinstance(table, dict):
        raise ConfigError(f"{_where(path, text, name)}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"{_where(path, text, key)}: unknown key {key!r} in [{name}] (known: {', '.join(sorted(known))})"
            )
        try:
            kwargs[key] = _check(value, hints[key])
        except TypeError as exc:
            raise ConfigError(f"{_where(path, text, key)}: {name}.{key} must be {exc}") from None
    return cls(**kwargs)


def load_config(path: Path | None = None, *, missing_ok: bool = True) -> Config:
    path = path or config_path()
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        if missing_ok:
            return Config(path=path)
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name not in ("path", "warnings")}
    kwargs: dict[str, Any] = {}
    for name, table in data.items():
        if name not in sections:
            raise ConfigError(f"{_where_section(path, text, name)}: unknown section [{name}] "
                              f"(known: {', '.join(sorted(sections))})")
        if name == "profiles":
            kwargs[name] = _profiles(table, path, text)
            continue
        cls = typing.get_type_hints(Config)[name]
        kwargs[name] = section_from_table(cls, table, name, path, text)
    warnings = []
    if any(p.api_key for p in kwargs.get("profiles", ())):
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0
        if mode & 0o077:
            warnings.append(f"{path} stores an API key and is readable by others (mode {mode:o}): "
                            f"chmod 600 {path}")
    return Config(path=path, warnings=tuple(warnings), **kwargs)


def _profiles(tables: Any, path: Path, text: str) -> tuple[Profile, ...]:
    if not isinstance(tables, list):
        raise ConfigError(f"{_where_section(path, text, 'profiles')}: profiles must be [[profiles]] tables")
    out = []
    for table in tables:
        profile = section_from_table(Profile, table, "profiles", path, text)
        if not profile.name or not profile.base_url:
            raise ConfigError(f"{_where_section(path, text, 'profiles')}: every [[profiles]] needs a name and a base_url")
        if profile.backend not in ("openai-chat", "openai"):
            raise ConfigError(f"{_where(path, text, 'backend')}: profiles.backend must be openai-chat or openai")
        if profile.api_key and profile.api_key_env:
            raise ConfigError(f"{_where(path, text, 'api_key')}: profile {profile.name!r} sets both api_key and "
                              "api_key_env: keep one")
        if any(p.name == profile.name for p in out):
            raise ConfigError(f"{_where_section(path, text, 'profiles')}: two profiles are named {profile.name!r}")
        out.append(profile)
    return tuple(out)


def _where_section(path: Path, text: str, name: str) -> str:
    m = re.search(rf"^\s*\[+\s*{re.escape(name)}\s*\]+", text, re.M)
    return f"{path}:{text.count(chr(10), 0, m.start()) + 1}" if m else str(path)


# ------------------------------------------------------------------ writing
def _toml_str(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", out)
    return f'"{out}"'


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_section(name: str, section: Any) -> str:
    lines = [f"[{name}]"]
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if value is None:
            continue
        lines.append(f"{_toml_key(f.name)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def dump_config(cfg: Config) -> str:
    parts = ["# tokdeck configuration (written by tokdeck; comments are not kept)\n"]
    for f in dataclasses.fields(cfg):
        if f.name in ("path", "warnings"):
            continue
        value = getattr(cfg, f.name)
        if isinstance(value, tuple):  # arrays of tables
            parts += [dump_section(f.name, item).replace(f"[{f.name}]", f"[[{f.name}]]", 1) for item in value]
        else:
            parts.append(dump_section(f.name, value))
    return "\n".join(parts)


def save_config(cfg: Config, path: Path | None = None) -> Path:
    """Write the config atomically with mode 0600 (it may hold API keys)."""
    path = path or cfg.path or config_path()
    atomic_write_text(path, dump_config(cfg), mode=0o600)
    return path


def replace_section(cfg: Config, name: str, **changes: Any) -> Config:
    """A copy of ``cfg`` with fields of one section changed."""
    section = dataclasses.replace(getattr(cfg, name), **changes)
    return dataclasses.replace(cfg, **{name: section})
