"""The typed config: validation with file:line, atomic 0600 writes, round trips."""

import stat

import pytest

from tui.core.config import Config, load_config, replace_section, save_config
from tui.core.errors import ConfigError


def test_missing_file_gives_defaults(tmp_path):
    cfg = load_config(tmp_path / "none.toml")
    assert cfg.tokens.reference == "o200k_base" and cfg.tokenizers.aliases == {}


def test_round_trip_and_mode_0600(tmp_path):
    path = tmp_path / "sub" / "config.toml"
    cfg = replace_section(Config(), "tokens", enabled=("cl100k_base", "qwen3"), specials="parse")
    cfg = replace_section(cfg, "tokenizers", aliases={"acme/*": "llama3", 'we"ird': "qwen3"})
    save_config(cfg, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_config(path)
    assert again.tokens.enabled == ("cl100k_base", "qwen3")
    assert again.tokens.specials == "parse"
    assert again.tokenizers.aliases == {"acme/*": "llama3", 'we"ird': "qwen3"}


@pytest.mark.parametrize("text,match", [
    ('[tokens]\nreference = "x"\nbogus = 1\n', r"config.toml:3: unknown key 'bogus'"),
    ('[tokens]\nreserved_output = "many"\n', r"config.toml:2: tokens.reserved_output must be an integer"),
    ('[tokens]\nenabled = [1, 2]\n', r"config.toml:2: tokens.enabled must be a list of strings"),
    ('[nope]\nx = 1\n', r"config.toml:1: unknown section \[nope\]"),
    ('[tokens\n', r"invalid TOML"),
])
def test_errors_name_file_and_line(tmp_path, text, match):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_env_override(tmp_path, monkeypatch):
    path = tmp_path / "custom.toml"
    path.write_text('[tokens]\nbudget_model = "llama-3.1-8b"\n')
    monkeypatch.setenv("TOKDECK_CONFIG", str(path))
    assert load_config().tokens.budget_model == "llama-3.1-8b"


def test_profiles_round_trip_and_validation(tmp_path):
    from tui.core.config import Profile

    path = tmp_path / "config.toml"
    cfg = Config(profiles=(Profile(name="gpu1", base_url="http://10.0.0.5:8000", model="qwen3-8b",
                                   api_key="sk-secret", headers={"X-Team": "ml"}),
                           Profile(name="gw", base_url="https://gw.intra", backend="openai", api_key_env="GW_KEY")))
    save_config(cfg, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_config(path)
    assert again.profiles == cfg.profiles
    assert again.profile("gw").api_key_env == "GW_KEY"
    with pytest.raises(ConfigError, match="no profile named 'x'"):
        again.profile("x")
    path.write_text('[[profiles]]\nname = "a"\nbase_url = "http://h"\nbackend = "grpc"\n')
    with pytest.raises(ConfigError, match="config.toml:4: profiles.backend must be openai-chat or openai"):
        load_config(path)
    path.write_text('[[profiles]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="needs a name and a base_url"):
        load_config(path)


def test_a_profile_takes_one_key_source(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[[profiles]]\nname = "a"\nbase_url = "http://h"\napi_key_env = "K"\napi_key = "sk-x"\n')
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="config.toml:5: profile 'a' sets both api_key and api_key_env"):
        load_config(path)


def test_a_stored_key_in_a_file_others_can_read_is_warned_about(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[[profiles]]\nname = "a"\nbase_url = "http://h"\napi_key = "sk-secret-77"\n')
    path.chmod(0o644)
    (warning,) = load_config(path).warnings
    assert warning == f"{path} stores an API key and is readable by others (mode 644): chmod 600 {path}"
    path.chmod(0o600)
    assert load_config(path).warnings == ()
    path.write_text('[[profiles]]\nname = "a"\nbase_url = "http://h"\napi_key_env = "K"\n')
    path.chmod(0o644)  # no stored key: nothing to protect
    assert load_config(path).warnings == ()
