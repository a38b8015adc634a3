"""GET /v1/models answers and base URLs are outside input: parsed or refused, never a crash."""

from __future__ import annotations

import json

import yarl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tui.core.bench.engine import endpoint_url
from tui.core.bench.models import ModelList, parse_models
from tui.core.endpoint import base_url_problem, has_credentials, shown_url

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
ENTRY = st.dictionaries(st.sampled_from(["id", "object", "tokdeck_tokenizer", "owned_by"]), JSON, max_size=4)


@settings(max_examples=400, deadline=None)
@given(doc=st.one_of(JSON, st.fixed_dictionaries({"data": st.one_of(JSON, st.lists(ENTRY | JSON, max_size=5))})))
def test_any_json_is_a_model_list_or_a_reason(doc):
    body = json.dumps(doc).encode()
    try:
        models = parse_models(body)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(models, ModelList)
    assert all(isinstance(i, str) and i.strip() for i in models.ids)
    listed = [m["id"] for m in doc["data"] if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"].strip()]
    assert list(models.ids) == listed
    assert models.sim_tokenizer is None or isinstance(models.sim_tokenizer, str)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_any_bytes_are_a_model_list_or_a_reason(body):
    try:
        parse_models(body)
    except ValueError:
        pass


PIECES = list("htps:/[]@.%?#-_~ 09azAZ\n\t\x00é") + ["http://", "https://", "::1", "[::1]", ":8000", "u:SECRETPW@"]
URLISH = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


@settings(max_examples=600, deadline=None)
@given(url=st.one_of(URLISH, st.builds(lambda a, b: a + b, st.sampled_from(["http://", "https://"]), URLISH)))
@example(url="http://[u:SECRETPW@[::1]")  # passed the check, then urlsplit quoted the password in an internal error
def test_a_base_url_that_passes_can_be_requested_and_shown(url):
    """Whatever passes the check builds request URLs, and shows without credentials: no exception."""
    problem = base_url_problem(url)
    if problem is not None:
        assert "\n" not in problem and "SECRETPW" not in problem
    if url.count("SECRETPW") == 1 and url.index("SECRETPW") < url.rfind("@"):
        assert "SECRETPW" not in shown_url(url)
    if problem is None:
        for path in ("/v1/models", "/v1/chat/completions"):
            yarl.URL(endpoint_url(url, path))
        if has_credentials(url):
            assert "@" not in yarl.URL(shown_url(url)).raw_authority
