"""The user config: one typed model, read from TOML, validated, written back atomically.

Location: ``$TOKDECK_CONFIG``, else ``$XDG_CONFIG_HOME/tokdeck/config.toml``. The file is
created with mode 0600 because profiles may hold API keys. A leading UTF-8 BOM is accepted.
Unknown keys, wrong types and bad values are errors naming the file, the line and the key.

Add a section by writing a frozen dataclass whose fields have defaults and the types
below (str, int, float, bool, str | None, int | None, tuple[str, ...], dict[str, str]),
and adding it as a field of ``Config``. Every value is checked by its type: numbers must be
finite and at least 0 (``metadata={"above": 0}`` for > 0, ``{"at_most": 19}`` for <= 19), strings (also in lists and tables)
non-empty and free of control characters; ``metadata={"check": f}`` adds a field's own rule,
``f(value)`` returning what is wrong ("must be ...", "is ...") or None.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .endpoint import (BACKENDS, base_url_problem, control_character, env_name_problem, header_name_problem,
                       header_value_problem, metrics_url_problem)
from .errors import ConfigError
from .numbers import NumberRule
from .paths import atomic_write_text, config_path


def _one_of(*choices: str):
    def check(value: str) -> str | None:
        return None if value in choices else f"must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}"
    return check


def _specials(value: str) -> str | None:
    from .tokenizers.base import SPECIAL_POLICIES

    return _one_of(*SPECIAL_POLICIES)(value)


#: the Bench pane's own entries beside the config's profiles
SIMULATOR_PROFILE = "simulator"
COMMAND_LINE_PROFILE = "command line"


def _tokenizer_ids(value: tuple) -> str | None:
    if not value:
        return "must list at least one tokenizer id (leave the key out for every bundled one)"
    twice = next((t for i, t in enumerate(value) if t in value[:i]), None)
    return f"names {twice!r} twice" if twice else None


def _profile_name(value: str) -> str | None:
    if value in (SIMULATOR_PROFILE, COMMAND_LINE_PROFILE):
        return f"must not be {value!r}: the Bench pane uses that name for its own entry"
    return None


def _context_windows(value: dict[str, str]) -> str | None:
    from .tokenizers.context import parse_overrides

    for pattern, window in value.items():
        try:
            parse_overrides({pattern: window})
        except ConfigError:
            return f'must give windows as whole numbers of tokens ("65536"): {pattern!r} is {window!r}'
    return None


def _headers(value: dict[str, str]) -> str | None:
    for name, text in value.items():
        problem = header_name_problem(name) or header_value_problem(text)
        if problem:
            return f"has a bad header: {name!r} {problem}"
    return None


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
    enabled: tuple[str, ...] | None = field(default=None, metadata={"check": _tokenizer_ids})
    reference: str = "o200k_base"
    specials: str = field(default="literal", metadata={"check": _specials})
    budget_model: str = "gpt-4o"
    reserved_output: int = 1024
    #: the dashboard's counting processes (the tokenizers are split between them)
    counting_processes: int = field(default=2, metadata={"above": 0})
    #: how much lower (nice) their bulk work runs than the UI: tokenizer loads, whole-document
    #: counts and the Data pane's; 0 to 19 (0: the same priority, in sessions of their own)
    counting_nice: int = field(default=10, metadata={"at_most": 19})
    #: model name or glob pattern -> context window in tokens, as a string ("65536");
    #: overrides the built-in table of tui.core.tokenizers.context
    context_windows: dict[str, str] = field(default_factory=dict, metadata={"check": _context_windows})


@dataclass(frozen=True)
class Profile:
    """An endpoint to benchmark: ``[[profiles]]`` tables in the config."""

    name: str = field(default="", metadata={"check": _profile_name})
    base_url: str = field(default="", metadata={"check": base_url_problem})
    backend: str = field(default="openai-chat", metadata={"check": _one_of(*BACKENDS)})
    model: str | None = None
    #: the API key is read from this environment variable at run time ...
    api_key_env: str | None = field(default=None, metadata={"check": env_name_problem})
    #: ... or stored here (the config file is 0600; never printed or saved in results)
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, metadata={"check": _headers})
    insecure: bool = False  # skip TLS verification
    ca_bundle: str | None = None
    timeout_s: float = field(default=600.0, metadata={"above": 0})
    #: the server's Prometheus metrics, when not at /metrics of base_url's root
    metrics_url: str | None = field(default=None, metadata={"check": metrics_url_problem})


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


def _line_of(text: str, key: str, start: int = 0) -> int | None:
    pat = re.compile(rf'^[ \t]*"?{re.escape(key)}"?[ \t]*=', re.M)
    m = pat.search(text, start)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _where(path: Path, text: str, key: str, start: int = 0) -> str:
    """``path:line`` of ``key = ...`` at or after offset ``start`` (its table's header), else ``path``."""
    line = _line_of(text, key, start) or _line_of(text, key)
    return f"{path}:{line}" if line else str(path)


def _text(value: Any, what: str, empty: str | None = None) -> str:
    """A string value: non-empty, no control characters (TypeError says what it must be;
    ``empty`` instead when the string is blank)."""
    if not isinstance(value, str):
        raise TypeError(what)
    if not value.strip():
        raise TypeError(empty or f"a non-empty {what.removeprefix('a ')}")
    bad = control_character(value)
    if bad:
        raise TypeError(f"{what} without control characters (found {bad})")
    return value


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
        if not isinstance(value, list):
            raise TypeError("a list of strings")
        return tuple(_text(v, "a list of strings", "a list of non-empty strings") for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError("a table of strings")
        return {_text(k, "a table of strings", "a table with non-empty names"):
                _text(v, "a table of strings", "a table of non-empty strings") for k, v in value.items()}
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
        return _text(value, "a string")
    raise TypeError(f"a value of type {hint}")  # pragma: no cover - programming error


def _value_problem(value: Any, metadata: typing.Mapping[str, Any]) -> str | None:
    """What is wrong with a converted value (numbers: finite, >= 0 or > ``above``, <= ``at_most``), or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        above = metadata.get("above")
        rule = NumberRule(type(value), lo=0 if above is None else above, lo_open=above is not None,
                          hi=metadata.get("at_most"))
        problem = rule.problem(value)
        if problem:
            return f"{problem}, not {value!r}"
    check = metadata.get("check")
    return check(value) if check is not None and value is not None else None


def section_from_table(cls: type, table: Any, name: str, path: Path, text: str, start: int = 0):
    """Build a section dataclass from a TOML table, rejecting unknown keys, wrong types and bad
    values; ``start`` is the offset of the table in ``text`` (for the line numbers)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{_where(path, text, name)}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(
                f"{_where(path, text, key, start)}: unknown key {key!r} in [{name}] "
                f"(known: {', '.join(sorted(fields))})"
            )
        problem: str | None
        try:
            kwargs[key] = _check(value, hints[key])
        except TypeError as exc:
            problem = f"must be {exc}"
        else:
            problem = _value_problem(kwargs[key], fields[key].metadata)
        if problem:
            raise ConfigError(f"{_where(path, text, key, start)}: {name}.{key} {problem}")
    return cls(**kwargs)


def load_config(path: Path | None = None, *, missing_ok: bool = True) -> Config:
    path = path or config_path()
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a BOM (Windows editors) is not TOML
    except FileNotFoundError:
        if missing_ok:
            return Config(path=path)
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte offset {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror or exc}") from None
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
    headers = [m.start() for m in re.finditer(r"^[ \t]*\[\[[ \t]*profiles[ \t]*\]\]", text, re.M)]
    aligned = len(headers) == len(tables)  # one [[profiles]] header per table; else inline tables
    out: list[Profile] = []
    for i, table in enumerate(tables):
        start = headers[i] if aligned else 0
        where = f"{path}:{text.count(chr(10), 0, start) + 1}" if aligned else _where_section(path, text, "profiles")
        profile = section_from_table(Profile, table, "profiles", path, text, start)
        if not profile.name or not profile.base_url:
            raise ConfigError(f"{where}: every [[profiles]] needs a name and a base_url")
        if profile.api_key and profile.api_key_env:
            raise ConfigError(f"{_where(path, text, 'api_key', start)}: profile {profile.name!r} sets both api_key "
                              "and api_key_env: keep one")
        if any(p.name == profile.name for p in out):
            raise ConfigError(f"{where}: two profiles are named {profile.name!r}")
        out.append(profile)
    return tuple(out)


def _where_section(path: Path, text: str, name: str) -> str:
    m = re.search(rf"^[ \t]*\[+[ \t]*{re.escape(name)}[ \t]*\]+", text, re.M)
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
