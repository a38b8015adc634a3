"""The run options (one declaration: flags, form fields, RunOptions), the number rules, the API-key
lookup, profiles applied without touching the input, and result JSON read back into its types."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.bench.options import (FORM_ROWS, OPTION, OPTIONS, PROFILE_OPTIONS, RunOptions, add_run_arguments,
                                    apply_profile, as_text, from_namespace, validate)
from tui.core.config import Profile
from tui.core.endpoint import resolve_api_key
from tui.core.errors import TokdeckError
from tui.core.numbers import SEED, NumberRule


def options_of(*argv: str) -> RunOptions:
    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return from_namespace(p.parse_args(list(argv)))


# ---------------------------------------------------------------------- the declaration
def test_no_flag_gives_the_declared_defaults_and_nothing_given():
    options = options_of()
    assert options == RunOptions() and options.given == frozenset()
    for spec in OPTIONS:
        assert getattr(options, spec.name) == spec.default


def test_flags_are_typed_and_the_typed_ones_are_given():
    o = options_of("--num-prompts", "12", "--request-rate", "inf", "--burstiness", "0.5", "--header", "A=1", "B=2",
                   "--header", "C=3", "--goodput", "ttft:500 tpot:50", "--goodput", "e2el:2000",
                   "--metric-percentiles", "50,99.9", "--percentile-metrics", "ttft,e2el", "--insecure",
                   "--timeout", "600")
    assert (o.num_prompts, o.request_rate, o.burstiness) == (12, math.inf, 0.5)
    assert o.header == ("A=1", "B=2", "C=3")
    # every --goodput counts (argparse's default kept only the last one)
    assert o.goodput == (("ttft", 500.0), ("tpot", 50.0), ("e2el", 2000.0))
    assert (o.metric_percentiles, o.percentile_metrics) == ((50.0, 99.9), ("ttft", "e2el"))
    assert o.insecure is True and o.timeout == 600.0
    assert o.given == {"num_prompts", "request_rate", "burstiness", "header", "goodput", "metric_percentiles",
                       "percentile_metrics", "insecure", "timeout"}


def test_a_bad_flag_value_is_argparses_error_with_the_options_message(capsys):
    with pytest.raises(SystemExit):
        options_of("--percentile-metrics", "ttft,latency")
    assert "argument --percentile-metrics: unknown metric latency" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        options_of("--seed", "x")
    assert "argument --seed: 'x' is not a whole number" in capsys.readouterr().err


def test_form_rows_follow_the_declaration_with_the_dataset_path_beside_its_name():
    rows = [[spec.name for spec in row] for row in FORM_ROWS]
    assert rows == [["profile"], ["model"], ["tokenizer"], ["dataset_name", "dataset_path"], ["num_prompts"],
                    ["output_len"], ["request_rate"], ["burstiness"], ["max_concurrency"], ["seed"], ["workers"],
                    ["sweep"], ["step_duration", "step_requests"], ["slo_percentile"], ["goodput"]]


def test_a_form_field_is_read_with_the_options_parser_and_named_in_its_message():
    rate, concurrency, prompts = OPTION["request_rate"], OPTION["max_concurrency"], OPTION["num_prompts"]
    assert rate.from_text(" inf ") == math.inf and concurrency.from_text("") is None
    with pytest.raises(ValueError, match=r"^request rate: 'fast' is not a number$"):
        rate.from_text("fast")
    with pytest.raises(ValueError, match=r"^max concurrency: must be between 1 and 100,000, not 0$"):
        concurrency.from_text("0")
    with pytest.raises(ValueError, match=r"^num prompts: a value is needed$"):
        prompts.from_text("  ")


FORM_VALUES = {
    "tokenizer": st.text("abcxyz-_/.0123456789", min_size=1, max_size=20),
    "num_prompts": st.integers(1, 1_000_000),
    "output_len": st.none() | st.integers(1, 10**9),
    "request_rate": st.just(math.inf) | st.floats(min_value=1e-9, max_value=1e12),
    "burstiness": st.floats(min_value=1e-6, max_value=1e6),
    "max_concurrency": st.none() | st.integers(1, 100_000),
    "seed": st.integers(-(1 << 63), (1 << 63) - 1),
    "goodput": st.lists(st.tuples(st.sampled_from(["ttft", "tpot", "e2el"]), st.floats(0, 1e9)), max_size=3,
                        unique_by=lambda kv: kv[0]).map(tuple),
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries(FORM_VALUES))
def test_a_value_shown_in_the_form_reads_back_the_same(values):
    for name, value in values.items():
        assert OPTION[name].from_text(as_text(value)) == value, name


# ---------------------------------------------------------------------- numbers
RULES = [NumberRule(int, lo=1, hi=1_000_000), NumberRule(float, lo=0, lo_open=True),
         NumberRule(float, lo=0, lo_open=True, inf_ok=True), NumberRule(float, lo=0, hi=1, hi_open=True), SEED]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RULES), st.text(max_size=12) | st.floats().map(repr) | st.integers().map(str))
def test_a_number_rule_takes_what_it_says_and_refuses_the_rest_in_one_line(rule, text):
    try:
        value = rule.parse(text)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and message
        assert message.startswith(("must be ", f"{text!r} is not a "))
        return
    assert isinstance(value, rule.kind) and rule.problem(value) is None
    assert not math.isnan(value) and (rule.inf_ok or not math.isinf(value))


def test_number_rule_words():
    assert NumberRule(float, lo=0, lo_open=True, inf_ok=True).problem(0.0) == "must be > 0 (or inf)"
    assert NumberRule(float, lo=0, lo_open=True).problem(math.inf) == "must be a finite number > 0"
    assert NumberRule(int, lo=0).problem(-5) == "must be >= 0"
    assert NumberRule(float, lo=0, hi=1, hi_open=True).problem(1.0) == "must be in [0, 1)"


# ---------------------------------------------------------------------- API key
def test_resolve_api_key_named_variable_then_stored_then_openai_api_key():
    env = {"OPENAI_API_KEY": "sk-openai", "GW_KEY": "sk-gw"}
    key = resolve_api_key("GW_KEY", "sk-stored", env)  # a named variable wins (--api-key-env over a profile)
    assert (key.value, key.source, key.required()) == ("sk-gw", "$GW_KEY", "sk-gw")
    stored = resolve_api_key(None, "sk-stored", env)
    assert (stored.value, stored.source) == ("sk-stored", "the profile's stored key")
    assert resolve_api_key(None, None, env).source == "$OPENAI_API_KEY"
    assert resolve_api_key(None, None, {}).required() is None  # no key at all: requests go without one
    with pytest.raises(TokdeckError, match=r"^--api-key-env: environment variable UNSET is not set or empty$"):
        resolve_api_key("UNSET", None, {"UNSET": ""}).required()
    assert "sk-" not in repr(key) + repr(stored)


# ---------------------------------------------------------------------- profiles
PROFILE = Profile(name="gpu1", base_url="http://gpu1:8000", backend="openai", model="qwen3", api_key_env="GPU1_KEY",
                  headers={"X-Team": "ml"}, insecure=True, timeout_s=30.0)


def test_a_profile_fills_in_only_what_the_user_did_not_give():
    typed = options_of("--model", "llama", "--timeout", "600", "--header", "X-Run=7")
    o = apply_profile(typed, PROFILE)
    assert (o.base_url, o.backend, o.api_key_env, o.insecure) == ("http://gpu1:8000", "openai", "GPU1_KEY", True)
    assert o.model == "llama" and o.timeout == 600.0  # typed, even at its default value
    assert o.header == ("X-Team=ml", "X-Run=7")
    assert apply_profile(options_of(), PROFILE).timeout == 30.0
    assert apply_profile(options_of("--ca-bundle", "/ca.pem"), PROFILE).insecure is False  # TLS: one choice
    assert typed == options_of("--model", "llama", "--timeout", "600", "--header", "X-Run=7")  # untouched


def test_the_panes_selection_forgets_the_command_lines_endpoint():
    typed = options_of("--base-url", "http://other:1", "--api-key-env", "OTHER_KEY", "--header", "X-A=1",
                       "--timeout", "5", "--num-prompts", "7")
    o = apply_profile(typed.without(PROFILE_OPTIONS), PROFILE)
    assert (o.base_url, o.api_key_env, o.header, o.timeout) == ("http://gpu1:8000", "GPU1_KEY", ("X-Team=ml",), 30.0)
    assert o.num_prompts == 7 and o.given == {"num_prompts"}


def test_prepare_leaves_its_input_as_it_was(bundled):
    from tui.core.bench.prepare import prepare
    from tui.core.bench.sim import SimConfig, ThreadedSimulator

    with ThreadedSimulator(SimConfig(ttft_ms=1, itl_ms=1)) as url:
        profile = dataclasses.replace(PROFILE, base_url=url, backend="openai-chat", api_key_env=None, model=None,
                                      insecure=False)
        options = options_of("--num-prompts", "3", "--random-input-len", "8", "--header", "X-Run=1",
                             "--save-detailed")
        before = dataclasses.replace(options)
        prepared = prepare(options, profile=profile, registry=bundled)
    assert options == before and options.given == before.given and options.base_url is None
    assert prepared.options.base_url == url and prepared.options.header == ("X-Team=ml", "X-Run=1")
    assert prepared.spec.headers == (("X-Team", "ml"), ("X-Run", "1")) and prepared.spec.read_timeout == 30.0
    assert prepared.options.saves_result and prepared.spec.keep_texts
    assert prepared.description.startswith("3 requests to ") and len(prepared.requests) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.options = options  # type: ignore[misc]


def test_validate_names_the_flag():
    with pytest.raises(TokdeckError, match=r"^--dataset-name custom needs --dataset-path FILE$"):
        validate(RunOptions(dataset_name="custom"))
    with pytest.raises(TokdeckError, match=r"^--label must not be empty$"):
        validate(RunOptions(label=" "))
    with pytest.raises(TokdeckError, match=r"^--header 'X Y': the name must be an HTTP header name"):
        validate(RunOptions(header=("X Y=1",)))


# ---------------------------------------------------------------------- results read back
def test_a_saved_summary_and_client_health_read_back_into_the_same_dataclasses():
    import orjson

    from tui.core.bench.results import ClientHealth, Summary
    from test_engine_golden import RUNS

    for make in RUNS.values():
        result = make()
        data = orjson.loads(orjson.dumps(result.to_vllm_json()))
        summary, health = Summary.from_json(data), ClientHealth.from_json(data["client_health"])

        def same(a, b):  # NaN is saved as null: it reads back as unknown (None) or NaN
            return a == b or (isinstance(b, float) and math.isnan(b) and (a is None or math.isnan(a)))

        for f in dataclasses.fields(Summary):
            if f.name != "metrics":
                assert same(getattr(summary, f.name), getattr(result.summary, f.name)), f.name
        assert summary.metrics == result.summary.metrics
        assert health is not None
        for f in dataclasses.fields(ClientHealth):
            a, b = getattr(health, f.name), getattr(result.client_health, f.name)
            assert same(a, b) or a == b, f.name


def test_vllms_old_goodput_key_and_partial_files():
    from tui.core.bench.results import ClientHealth, Summary

    s = Summary.from_json({"completed": 4, "request_goodput:": 0.5, "p99.9_ttft_ms": 7.0, "mean_ttft_ms": 2.0,
                           "failed": True, "duration": "long"})
    assert (s.completed, s.request_goodput, s.failed, s.duration) == (4, 0.5, None, None)
    assert s.metric("ttft").percentile(99.9) == 7.0 and s.metric("ttft").mean == 2.0 and s.metric("itl") is None
    assert ClientHealth.from_json({"event_loop_lag_ms": [1]}) is None and ClientHealth.from_json("x") is None
