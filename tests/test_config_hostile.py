"""The config file is outside input: every bad value is one line naming file:line and the key."""

from __future__ import annotations

import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.core.config import Config, Profile, dump_config, load_config
from tui.core.errors import ConfigError

P = '[[profiles]]\nname = "p"\nbase_url = "http://127.0.0.1:9"\n'


@pytest.mark.parametrize("text, where, message", [
    (P + "timeout_s = nan\n", 4, "profiles.timeout_s must be a finite number > 0, not nan"),
    (P + "timeout_s = 0\n", 4, "profiles.timeout_s must be a finite number > 0, not 0.0"),
    (P + "timeout_s = -1\n", 4, "profiles.timeout_s must be a finite number > 0, not -1.0"),
    (P + "timeout_s = inf\n", 4, "profiles.timeout_s must be a finite number > 0, not inf"),
    (P + "timeout_s = -inf\n", 4, "profiles.timeout_s must be a finite number > 0, not -inf"),
    (P + 'timeout_s = "600"\n', 4, "profiles.timeout_s must be a number"),
    ("[tokens]\nreserved_output = -5\n", 2, "tokens.reserved_output must be >= 0, not -5"),
    ("[tokens]\nreserved_output = 1.5\n", 2, "tokens.reserved_output must be an integer"),
    ("[tokens]\ncounting_processes = 0\n", 2, "tokens.counting_processes must be > 0, not 0"),
    ("[tokens]\ncounting_nice = 20\n", 2, "tokens.counting_nice must be between 0 and 19, not 20"),
    ("[tokens]\ncounting_nice = -1\n", 2, "tokens.counting_nice must be between 0 and 19, not -1"),
    ('[tokens]\nspecials = "garbage"\n', 2, "tokens.specials must be literal or parse, not 'garbage'"),
    ('[tokens]\nreference = ""\n', 2, "tokens.reference must be a non-empty string"),
    ('[tokens]\nbudget_model = "  "\n', 2, "tokens.budget_model must be a non-empty string"),
    ('[tokens]\nbudget_model = ["gpt-4o"]\n', 2, "tokens.budget_model must be a string"),
    ("[tokens]\nenabled = []\n", 2, "tokens.enabled must list at least one tokenizer id"),
    ('[tokens]\nenabled = ["qwen3", ""]\n', 2, "tokens.enabled must be a list of non-empty strings"),
    ('[tokens]\nenabled = "qwen3"\n', 2, "tokens.enabled must be a list of strings"),
    ('[tokens]\nenabled = ["qwen3", "llama3", "qwen3"]\n', 2, "tokens.enabled names 'qwen3' twice"),
    ('[[profiles]]\nname = "simulator"\nbase_url = "http://h"\n', 2,
     "profiles.name must not be 'simulator': the Bench pane uses that name for its own entry"),
    ('[tokens]\ncontext_windows = { "acme-*" = "lots" }\n', 2,
     "tokens.context_windows must give windows as whole numbers of tokens (\"65536\"): 'acme-*' is 'lots'"),
    ('[tokens]\ncontext_windows = { "acme-*" = "0" }\n', 2, "tokens.context_windows must give windows"),
    ('[tokenizers]\naliases = { "" = "qwen3" }\n', 2, "tokenizers.aliases must be a table with non-empty names"),
    ('[tokenizers]\naliases = { "acme" = "" }\n', 2, "tokenizers.aliases must be a table of non-empty strings"),
    ('[tokenizers]\npaths = ["/opt/m\\u0000"]\n', 2, "tokenizers.paths must be a list of strings without control "
                                                      "characters (found U+0000 (a NUL byte))"),
    ('[[profiles]]\nname = "p"\nbase_url = "http://[::1"\n', 3,
     "profiles.base_url is not a valid URL (Invalid IPv6 URL)"),
    ('[[profiles]]\nname = "p"\nbase_url = "gpu1:8000"\n', 3, "profiles.base_url must start with http:// or https://"),
    ('[[profiles]]\nname = "p"\nbase_url = "http://h:99999"\n', 3, "profiles.base_url is not a valid URL"),
    ('[[profiles]]\nname = "p"\nbase_url = "http://gpu 1"\n', 3, "profiles.base_url must not contain spaces"),
    ('[[profiles]]\nname = "p"\nbase_url = "http://h/?a=1"\n', 3, "profiles.base_url must not have a ?query"),
    ('[[profiles]]\nname = ""\nbase_url = "http://h"\n', 2, "profiles.name must be a non-empty string"),
    (P + 'headers = { X-Team = "a\\nb" }\n', 4, "profiles.headers must be a table of strings without control "
                                                "characters (found U+000A (a newline))"),
    (P + 'headers = { "X Team" = "a" }\n', 4, "profiles.headers has a bad header: 'X Team' must be an HTTP header name"),
    (P + 'headers = { X-Team = 5 }\n', 4, "profiles.headers must be a table of strings"),
    (P + 'api_key = "sk-abc\\n"\n', 4, "profiles.api_key must be a string without control characters"),
    (P + 'api_key = ""\n', 4, "profiles.api_key must be a non-empty string"),
    (P + 'api_key_env = ""\n', 4, "profiles.api_key_env must be a non-empty string"),
    (P + 'api_key_env = "MY KEY"\n', 4, "profiles.api_key_env must be an environment variable name"),
    (P + 'model = ""\n', 4, "profiles.model must be a non-empty string"),
    (P + 'model = ["a", "b"]\n', 4, "profiles.model must be a string"),
    (P + 'ca_bundle = ""\n', 4, "profiles.ca_bundle must be a non-empty string"),
    (P + 'insecure = "no"\n', 4, "profiles.insecure must be true or false"),
    (P + 'backend = "tgi"\n', 4, "profiles.backend must be openai-chat or openai, not 'tgi'"),
    (P + 'metrics_url = "ftp://h/metrics"\n', 4, "profiles.metrics_url must start with http:// or https://"),
    (P + 'metrics_url = "http://h/metrics#x"\n', 4, "profiles.metrics_url must not have a #fragment"),
])
def test_a_bad_value_is_one_line_with_file_line_and_key(tmp_path, text, where, message):
    path = tmp_path / "config.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    line = str(exc.value)
    assert line.startswith(f"{path}:{where}: {message}"), line
    assert "\n" not in line and "sk-abc" not in line


def test_the_line_is_that_of_the_profile_at_fault(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(P + "timeout_s = 30\n\n" + P.replace('"p"', '"q"') + "timeout_s = -1\n", "utf-8")
    with pytest.raises(ConfigError, match=r"config\.toml:9: profiles\.timeout_s must be"):
        load_config(path)


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbf" + P.encode() + b'[tokens]\nspecials = "parse"\n')
    cfg = load_config(path)
    assert cfg.profile("p").base_url == "http://127.0.0.1:9" and cfg.tokens.specials == "parse"


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe[tokens]\n", "not valid UTF-8"),
    (b"[tokens\n", "invalid TOML"),
])
def test_an_unreadable_file_is_one_line(tmp_path, data, message):
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message) as exc:
        load_config(path)
    assert "\n" not in str(exc.value)


def test_a_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


# ----------------------------------------------------------------------------- property
SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True)
           | st.text(string.printable + "\x00\x7f\u00e9", max_size=12))
VALUES = st.recursive(SCALARS.filter(lambda v: v is not None),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=6)
PROFILE_KEYS = [f.name for f in Profile.__dataclass_fields__.values()]


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + "".join(c if c.isalnum() or c in " -_./:" else f"\\u{ord(c):04x}" for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{ " + ", ".join(f"{_toml(k)} = {_toml(x)}" for k, x in v.items()) + " }"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["tokens", "tokenizers", "profiles"]), key=st.sampled_from(
    PROFILE_KEYS + ["enabled", "reference", "specials", "budget_model", "reserved_output", "context_windows",
                    "counting_processes", "aliases", "paths"]), value=VALUES)
def test_any_value_loads_or_is_one_config_error(tmp_path, section, key, value):
    """Whatever TOML value any key gets: a Config whose values survive a round trip, or one line."""
    path = tmp_path / "config.toml"
    head = "".join(line + "\n" for line in P.splitlines() if not line.startswith(key + " ")) \
        if section == "profiles" else f"[{section}]\n"
    try:
        path.write_text(head + f"{key} = {_toml(value)}\n", "utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot be written as UTF-8 at all
        return
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
        return
    assert isinstance(cfg, Config)
    again = tmp_path / "again.toml"
    again.write_text(dump_config(cfg), "utf-8")
    assert load_config(again) == cfg
