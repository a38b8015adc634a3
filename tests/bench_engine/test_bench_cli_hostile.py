"""`tokdeck bench` given hostile flags, configs, keys and endpoints: one accurate line, exit 2."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tokdeck_testing import run_cli

QUICK = ["--num-prompts", "2", "--random-input-len", "8", "--random-output-len", "2", "--disable-tqdm"]
SECRET = "sk-hostile-secret-31337"


def one_error_line(proc) -> str:
    """The run refused with exit 2 and a single `tokdeck: error:` line (nothing else on stderr)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "internal error" not in lines[0] and "Serving Benchmark Result" not in proc.stdout
    return lines[0]


class Endpoint(ThreadingHTTPServer):
    """A loopback server: GET /v1/models answers ``models`` (bytes), or never when ``hang``;
    ``authorizations`` collects the Authorization header of each request."""

    daemon_threads = True

    def __init__(self, models: bytes = b'{"data": []}', hang: bool = False):
        self.models, self.hang, self.release = models, hang, threading.Event()
        self.authorizations: list[str | None] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805 - the handler's own self is the request
                self.authorizations.append(handler.headers.get("Authorization"))
                if self.hang:
                    self.release.wait(30)
                    return
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(self.models)))
                handler.end_headers()
                handler.wfile.write(self.models)

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()


def profile_config(tmp_path, extra: str = "", base_url: str = "http://127.0.0.1:9") -> dict:
    path = tmp_path / "config.toml"
    path.write_text(f'[[profiles]]\nname = "p"\nbase_url = "{base_url}"\n{extra}', "utf-8")
    os.chmod(path, 0o600)
    return {"TOKDECK_CONFIG": str(path)}


@pytest.mark.parametrize("value", ["nan", "0", "-1", "inf"])
def test_a_profile_timeout_that_would_hang_or_fail_everything_is_refused(tmp_path, value):
    env = profile_config(tmp_path, f"timeout_s = {value}\n")
    line = one_error_line(run_cli("bench", "--profile", "p", *QUICK, env=env, timeout=60))
    assert line.startswith(f"tokdeck: error: {tmp_path / 'config.toml'}:4: profiles.timeout_s must be a finite "
                           f"number > 0")


@pytest.mark.parametrize("flags, words", [
    (["--timeout", "nan"], "argument --timeout: must be a finite number > 0, not nan"),
    (["--timeout", "inf"], "argument --timeout: must be a finite number > 0, not inf"),
    (["--timeout", "0"], "argument --timeout: must be a finite number > 0, not 0"),
    (["--connect-timeout", "-1"], "argument --connect-timeout: must be a finite number > 0"),
    (["--connect-timeout", "1e999"], "argument --connect-timeout: must be a finite number > 0"),
    (["--duration", "nan"], "argument --duration: must be a finite number > 0"),
    (["--request-rate", "nan"], "argument --request-rate: must be > 0 (or inf)"),
    (["--burstiness=-inf"], "argument --burstiness: must be > 0"),
    (["--temperature", "nan"], "argument --temperature: must be a finite number >= 0"),
    (["--temperature", "-1"], "argument --temperature: must be a finite number >= 0"),
    (["--random-range-ratio", "nan"], "argument --random-range-ratio: must be in [0, 1)"),
    (["--num-prompts", "100000000000"], "argument --num-prompts: must be between 1 and 1,000,000"),
    (["--max-concurrency", "100000000000"], "argument --max-concurrency: must be between 1 and 100,000"),
    (["--num-warmups", "100000000000"], "argument --num-warmups: must be between 0 and 10,000"),
    (["--random-input-len", "100000000000"], "argument --random-input-len: must be between 1 and 1,048,576"),
    (["--api-key-env", ""], "--api-key-env must not be empty"),
    (["--api-key-env", "MY KEY"], "--api-key-env must be an environment variable name"),
    (["--endpoint", "/v1/chat completions"], "--endpoint must be a path"),
    (["--base-url", "http://[::1"], "--base-url is not a valid URL (Invalid IPv6 URL) (got 'http://[::1')"),
    (["--base-url", "http://u:pw@[::1"], "--base-url is not a valid URL (Invalid IPv6 URL) (got 'http://[::1')"),
    (["--base-url", "http://gpu1:80a0"], "--base-url is not a valid URL"),
    (["--base-url", ""], "--base-url must not be empty"),
    (["--model", ""], "--model must not be empty"),
    (["--profile", ""], "--profile must not be empty"),
    (["--result-dir", ""], "--result-dir must not be empty"),
    (["--header", "X-Team=a\nb"], "--header 'X-Team': the value must not contain control characters (found U+000A"),
    (["--header", "X Team=a"], "--header 'X Team': the name must be an HTTP header name"),
])
def test_bad_flags_are_one_accurate_line(flags, words):
    line = one_error_line(run_cli("bench", *flags, *QUICK, timeout=60))
    assert words in line, line


def test_a_newline_in_a_profile_header_is_refused(tmp_path):
    env = profile_config(tmp_path, 'headers = { X-Team = "ml\\r\\nX-Evil: 1" }\n')
    line = one_error_line(run_cli("bench", "--profile", "p", *QUICK, env=env, timeout=60))
    assert ":4: profiles.headers must be a table of strings without control characters (found U+000D" in line


@pytest.mark.parametrize("key", [SECRET + "\n", SECRET + "\r\nX-Evil: 1", "\x7f" + SECRET])
def test_a_control_character_in_the_key_variable_is_refused_without_showing_it(key):
    with Endpoint() as ep:
        line = one_error_line(run_cli("bench", "--base-url", ep.url, "--api-key-env", "EP_KEY", *QUICK,
                                      env={"EP_KEY": key}, timeout=60))
    assert line.startswith("tokdeck: error: the API key from $EP_KEY contains a control character")
    assert SECRET not in line


@pytest.mark.parametrize("how", ["OPENAI_API_KEY", "--api-key-env", "profile api_key", "--header Authorization"])
def test_url_credentials_with_an_api_key_is_one_line_and_shows_neither(tmp_path, how):
    url = "http://alice:pa55word@127.0.0.1:9"
    env, flags = {}, ["--base-url", url]
    if how == "OPENAI_API_KEY":
        env["OPENAI_API_KEY"] = SECRET
    elif how == "--api-key-env":
        env["EP_KEY"] = SECRET
        flags += ["--api-key-env", "EP_KEY"]
    elif how == "profile api_key":
        env = profile_config(tmp_path, f'api_key = "{SECRET}"\n', base_url=url)
        flags = ["--profile", "p"]
    else:
        flags += ["--header", f"Authorization=Bearer {SECRET}"]
    line = one_error_line(run_cli("bench", *flags, *QUICK, env=env, timeout=60))
    assert "credentials in the URL (user:password@) and" in line and line.endswith("keep one")
    assert "pa55word" not in line and SECRET not in line


def test_url_credentials_alone_are_sent_as_basic_auth():
    import base64

    with Endpoint(b'{"data": [{"id": "m"}]}') as ep:
        proc = run_cli("bench", "--base-url", ep.url.replace("http://", "http://alice:pa55word@"), *QUICK,
                       "--tokenizer", "cl100k_base", timeout=60)
    assert ep.authorizations[0] == "Basic " + base64.b64encode(b"alice:pa55word").decode()
    assert "pa55word" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("doc, reason", [
    ({"data": {"id": "m"}}, 'no "data" array'),
    ({"data": 5}, 'no "data" array'),
    ({"data": [{"id": 5}]}, 'no entry of "data" has a string "id"'),
    ({"data": [{"id": ""}]}, 'no entry of "data" has a string "id"'),
    ({"data": []}, "it lists no model"),
    ({"object": "list"}, 'no "data" array'),
    ([], "not a JSON object"),
])
def test_a_model_list_that_is_not_one_says_so(doc, reason):
    with Endpoint(json.dumps(doc).encode()) as ep:
        line = one_error_line(run_cli("bench", "--base-url", ep.url, *QUICK, timeout=60))
    assert line == (f"tokdeck: error: no --model given and {ep.url}/v1/models gave none "
                    f"({'' if reason == 'it lists no model' else 'not a model list: '}{reason}): pass --model")


def test_a_silent_models_endpoint_fails_after_the_connect_timeout():
    with Endpoint(hang=True) as ep:
        t0 = time.monotonic()
        line = one_error_line(run_cli("bench", "--base-url", ep.url, "--connect-timeout", "2", *QUICK, timeout=60))
        elapsed = time.monotonic() - t0
    assert line == f"tokdeck: error: cannot reach {ep.url}: no answer within 2 s"
    assert elapsed < 6, elapsed


@pytest.mark.parametrize("text, message", [
    ('[tokens]\nspecials = "garbage"\n', ":2: tokens.specials must be literal or parse, not 'garbage'"),
    ("[tokens]\nreserved_output = -1\n", ":2: tokens.reserved_output must be >= 0, not -1"),
    ('[tokens]\nenabled = ["qwen3", ""]\n', ":2: tokens.enabled must be a list of non-empty strings"),
    ('[tokenizers]\naliases = { acme = ["qwen3"] }\n', ":2: tokenizers.aliases must be a table of strings"),
    ('[tokens]\nenabled = ["nope", "qwen3"]\n',
     ": [tokens] enabled names unknown tokenizer(s) 'nope' (see `tokdeck tokenizers list`)"),
])
def test_count_with_a_bad_config_value_is_one_line(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text, "utf-8")
    notes = tmp_path / "notes.md"
    notes.write_text("hello", "utf-8")
    line = one_error_line(run_cli("count", str(notes), env={"TOKDECK_CONFIG": str(path)}))
    assert line == f"tokdeck: error: {path}{message}"


def test_a_config_with_a_bom_works(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b'\xef\xbb\xbf[tokens]\nspecials = "parse"\n')
    notes = tmp_path / "notes.md"
    notes.write_text("hello <|endoftext|>", "utf-8")
    proc = run_cli("count", str(notes), "-t", "cl100k_base", "--json", env={"TOKDECK_CONFIG": str(path)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["specials"] == "parse"


def test_a_served_model_name_cannot_shape_the_result_file_name(tmp_path):
    doc = {"data": [{"id": "team/../evil\nname"}]}
    with Endpoint(json.dumps(doc).encode()) as ep:
        proc = run_cli("bench", "--base-url", ep.url, "--tokenizer", "cl100k_base", *QUICK, "--save-result",
                       "--result-dir", str(tmp_path / "res"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    (saved,) = (tmp_path / "res").iterdir()
    assert saved.name.startswith("openai-chat-infqps-evil_name-") and saved.suffix == ".json"


def test_a_seed_no_result_file_can_hold_is_refused_before_the_run(tmp_path):
    # it used to run, then fail to save (JSON numbers hold 64 bits): exit 70 and the result lost
    results = tmp_path / "results"
    line = one_error_line(run_cli("bench", "--seed", str(1 << 64), *QUICK, "--save-result", "--result-dir",
                                  str(results), timeout=60))
    assert "argument --seed: must be between -9,223,372,036,854,775,808 and 9,223,372,036,854,775,807" in line
    proc = run_cli("bench", "--seed", str(-(1 << 63)), *QUICK, "--save-result", "--result-dir", str(results),
                   timeout=60)
    assert proc.returncode == 0, proc.stderr
    (saved,) = results.iterdir()
    assert json.loads(saved.read_text())["seed"] == -(1 << 63)
