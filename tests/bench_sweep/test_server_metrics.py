"""The server's own view: /metrics pages of vLLM, SGLang and TGI mapped to one sample, hostile
pages refused in one line, and the scraper beside a real run against the simulator."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.bench.servermetrics import (MAX_PAGE_BYTES, MAX_SERIES, MetricsProblem, MetricsScraper, ServerSample,
                                          default_metrics_url, sample_of, same_origin)

VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen"} 7.0
vllm:num_requests_running{engine="1",model_name="qwen"} 5.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="qwen"} 3.0
vllm:num_requests_waiting{engine="1",model_name="qwen"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="qwen"} 0.25
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="0.3",model_name="qwen"} 1.0
"""
SGLANG = """sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 8
sglang:num_queue_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 4
sglang:token_usage{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.28
"""
TGI = """# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 12
# TYPE tgi_queue_size gauge
tgi_queue_size 30
tgi_batch_current_max_tokens 4096
"""


def test_vllm_sglang_and_tgi_map_to_one_sample():
    assert sample_of(VLLM, "qwen", t=1.5) == ("vllm", ServerSample(1.5, 12, 3, 0.375))  # engines add up
    assert sample_of(SGLANG) == ("sglang", ServerSample(0.0, 8, 4, 0.28))
    assert sample_of(TGI) == ("tgi", ServerSample(0.0, 12, 30, None))  # TGI says nothing of its KV cache
    old = "vllm:num_requests_running 1\nvllm:num_requests_waiting 2\nvllm:gpu_cache_usage_perc 0.1\n"
    assert sample_of(old) == ("vllm", ServerSample(0.0, 1, 2, 0.1))  # vLLM before V1


def test_series_of_the_runs_model_count_when_there_are_several():
    page = ('vllm:num_requests_running{model_name="a"} 3\nvllm:num_requests_running{model_name="b"} 40\n'
            'vllm:num_requests_waiting{model_name="b"} 9\n')
    assert sample_of(page, "a")[1] == ServerSample(0.0, 3, 9, None)  # b's queue: the only one there is
    assert sample_of(page, "c")[1] == ServerSample(0.0, 43, 9, None)  # no series of the model: all of them
    assert sample_of(page)[1].running == 43


@pytest.mark.parametrize("page, why", [
    ("", "none of vLLM's, SGLang's or TGI's metrics"),
    ("<html>Not Found</html>", "none of vLLM's"),
    ("process_cpu_seconds_total 12\n", "none of vLLM's"),
    ('vllm:num_requests_running{model_name="a} 3\n', "not Prometheus text"),
    ("vllm:num_requests_running three\n", "not Prometheus text"),
    ("".join(f'tgi_queue_size{{i="{i}"}} 1\n' for i in range(MAX_SERIES + 1)), f"more than {MAX_SERIES} series"),
])
def test_pages_without_a_reading_say_why(page, why):
    with pytest.raises(MetricsProblem, match=why):
        sample_of(page)


def test_nonsense_values_leave_their_field_empty():
    page = ("vllm:num_requests_running NaN\nvllm:num_requests_waiting -1\nvllm:kv_cache_usage_perc 1.5\n")
    assert sample_of(page)[1] == ServerSample(0.0, None, None, None)
    huge = "sglang:num_running_reqs 1e300\nsglang:num_queue_reqs +Inf\nsglang:token_usage 1\n"
    assert sample_of(huge)[1] == ServerSample(0.0, None, None, 1.0)


_names = st.sampled_from(["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                          "sglang:num_queue_reqs", "tgi_queue_size", "vllm:other", "x"])
_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(
    ["NaN", "+Inf", "-Inf", "1e400", "0x10", "", "1_000", "७"]), st.integers(-2**70, 2**70).map(str))
_labels = st.one_of(st.just(""), st.text(max_size=20).map(lambda t: "{" + t + "}"),
                    st.builds(lambda k, v: f'{{{k}="{v}"}}', st.sampled_from(["model_name", "engine", "le", "1x"]),
                              st.text(max_size=10)))
_lines = st.builds(lambda n, lab, v, tail: f"{n}{lab} {v}{tail}", _names, _labels, _values,
                   st.sampled_from(["", " 123", " x", "\r"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_lines, st.text(max_size=60)), max_size=30))
def test_any_page_gives_a_sane_sample_or_one_line_problem(lines):
    try:
        engine, sample = sample_of("\n".join(lines), "m")
    except MetricsProblem as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200
        return
    assert engine in ("vllm", "sglang", "tgi")
    for count in (sample.running, sample.waiting):
        assert count is None or (isinstance(count, int) and 0 <= count <= 1_000_000_000)
    assert sample.kv_cache_usage is None or (math.isfinite(sample.kv_cache_usage) and 0 <= sample.kv_cache_usage <= 1)


def test_a_huge_page_of_other_metrics_is_cheap():
    import time

    page = "".join(f'vllm:e2e_request_latency_seconds_bucket{{le="{i}"}} {i}\n' for i in range(100_000)) + VLLM
    t = time.perf_counter()
    assert sample_of(page, "qwen")[1].running == 12
    assert time.perf_counter() - t < 0.5  # only the lines of the known names reach the parser


def test_urls_and_the_origin_rule():
    assert default_metrics_url("http://gpu1:8000") == "http://gpu1:8000/metrics"
    assert default_metrics_url("http://gpu1:8000/v1/") == "http://gpu1:8000/metrics"
    assert same_origin("http://gpu1:8000/metrics", "http://gpu1:8000/v1")
    assert same_origin("https://gw/metrics", "https://gw:443")
    assert not same_origin("http://gpu1:9090/metrics", "http://gpu1:8000")
    assert not same_origin("http://mon/metrics", "http://gpu1:8000")
    assert not same_origin("https://gpu1:8000/metrics", "http://gpu1:8000")


# ---------------------------------------------------------------------- the scraper, over loopback
async def _server(routes):
    from aiohttp import web

    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


@pytest.mark.parametrize("answer, note", [
    ("404", "answered HTTP 404"),
    ("redirect", "redirects (HTTP 302 to http://elsewhere.example/metrics); give --metrics-url"),
    ("html", "none of vLLM's, SGLang's or TGI's metrics in it"),
    ("huge", f"is larger than {MAX_PAGE_BYTES >> 20} MiB"),
])
async def test_a_server_without_metrics_gets_no_view_said_once(answer, note):
    from aiohttp import web

    hits = []

    async def metrics(request):
        hits.append(request.path)
        if answer == "404":
            return web.Response(status=404)
        if answer == "redirect":
            return web.Response(status=302, headers={"Location": "http://elsewhere.example/metrics"})
        if answer == "huge":
            return web.Response(body=b"x" * (MAX_PAGE_BYTES + 10))
        return web.Response(text="<html>hello</html>")

    async def elsewhere(request):
        hits.append("followed")
        return web.Response(text=VLLM)

    runner, url = await _server({"/metrics": metrics, "/elsewhere": elsewhere})
    try:
        scraper = MetricsScraper(url + "/metrics", interval=0.05)
        async with scraper:
            await asyncio.sleep(0.4)
    finally:
        await runner.cleanup()
    assert hits == ["/metrics"]  # asked once, never again, no redirect followed
    assert scraper.note == f"no server view: {url}/metrics {note}"
    view = scraper.view(origin=0.0)
    assert view.samples == () and view.note == scraper.note and view.line() == scraper.note


async def test_an_unreachable_metrics_url_is_said_once():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    scraper = MetricsScraper(f"http://127.0.0.1:{port}/metrics", interval=0.05)
    async with scraper:
        await asyncio.sleep(0.3)
    assert scraper.note.startswith(f"no server view: http://127.0.0.1:{port}/metrics cannot be read (")


async def test_after_a_first_reading_failures_are_skipped_and_samples_stay_bounded():
    from aiohttp import web

    calls = []

    async def metrics(request):
        calls.append(1)
        if len(calls) % 3 == 0:
            return web.Response(status=503)
        return web.Response(text=f"tgi_queue_size {len(calls)}\ntgi_batch_current_size 1\n")

    runner, url = await _server({"/metrics": metrics})
    try:
        scraper = MetricsScraper(url + "/metrics", interval=0.01, max_samples=8)
        async with scraper:
            while len(calls) < 40:
                await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
    assert scraper.note is None and scraper.failed >= 10
    assert 4 <= len(scraper.samples) <= 8 and scraper.interval >= 0.02  # thinned, and slowed down
    ts = [s.t for s in scraper.samples]
    assert ts == sorted(ts) and ts[0] < ts[-1]


async def test_the_key_goes_only_to_the_runs_own_origin(tmp_path):
    from dataclasses import replace

    from tui.core.bench.options import RunOptions
    from tui.core.bench.servermetrics import scraper_for
    from tui.core.bench.engine import BenchSpec

    class Prep:
        def __init__(self, metrics_url):
            self.options = RunOptions(metrics_url=metrics_url)
            self.spec = BenchSpec("http://gpu1:8000", "m", api_key="sk-secret", headers=(("X-Team", "ml"),))

    same = scraper_for(Prep(None))
    assert same.url == "http://gpu1:8000/metrics"
    assert same.headers == {"Accept": "text/plain", "Authorization": "Bearer sk-secret", "X-Team": "ml"}
    other = scraper_for(Prep("http://monitor:9090/federate?match=vllm"))
    assert other.headers == {"Accept": "text/plain"}
    prep = Prep(None)
    prep.options = replace(prep.options, no_server_metrics=True)
    assert scraper_for(prep) is None


def test_a_profile_names_the_metrics_url_unless_the_user_gave_one():
    from tui.core.bench.options import RunOptions, apply_profile
    from tui.core.config import Profile

    profile = Profile("gpu1", "http://gpu1:8000", metrics_url="http://gpu1:9400/metrics?job=vllm")
    assert apply_profile(RunOptions(), profile).metrics_url == "http://gpu1:9400/metrics?job=vllm"
    mine = RunOptions(metrics_url="http://x/m", given=frozenset({"metrics_url"}))
    assert apply_profile(mine, profile).metrics_url == "http://x/m"
    off = RunOptions(no_server_metrics=True, given=frozenset({"no_server_metrics"}))
    assert apply_profile(off, profile).metrics_url is None
