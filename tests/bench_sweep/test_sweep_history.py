"""A saved sweep read back for History: its points, answer and server view as the sweep had them;
listed as a sweep; hostile files give one-line errors."""

from __future__ import annotations

import copy
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep_testing import run_sweep

from tui.core.bench.capacity import SweepSpec
from tui.core.bench.history import (RunData, SweepData, list_result_files, load_history_file, load_result_file,
                                    load_sweep_file, sweep_from_dict)
from tui.core.bench.sim import SimConfig
from tui.core.bench.sweep import sweep_point
from tui.core.errors import TokdeckError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real sweep (4 places, 8 streams queue) and its file as `--save-result` writes it."""
    result, _ = run_sweep(SimConfig(ttft_ms=30, itl_ms=5, max_batch=4), sweep=SweepSpec("concurrency", (1, 4, 8)),
                          step_requests=24, goodput=(("ttft", 70.0),))
    path = tmp_path_factory.mktemp("sweeps") / "sim-sweep-concurrency.json"
    path.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2))
    return result, path


def test_a_saved_sweep_reads_back_as_it_was_drawn(saved):
    result, path = saved
    sweep = load_history_file(path)
    assert isinstance(sweep, SweepData) and sweep == load_sweep_file(path)
    assert sweep.name == "sim-sweep-concurrency" and sweep.sweep == "concurrency=1,4,8"
    assert sweep.points == tuple(sweep_point(s) for s in result.steps)
    assert sweep.answer == tuple(result.answer()) and sweep.answer[0].startswith("capacity: 4 concurrent streams")
    assert sweep.capacity_rate == pytest.approx(result.capacity.request_rate)
    assert sweep.knee_throughput == pytest.approx(result.knee.throughput)
    assert (sweep.percentile, sweep.limits_ms) == (99.0, (("ttft", 70.0),))
    # the server's samples on the sweep's timeline: each step's shifted by its start
    expected = sorted(round(s.started_at + x.t, 3) for s in result.steps for x in s.result.server_metrics.samples)
    assert [round(x.t, 3) for x in sweep.samples] == pytest.approx(expected, abs=2e-3)
    assert max(x.waiting for x in sweep.samples) == 4 and max(x.running for x in sweep.samples) == 4


def test_a_sweep_file_is_not_a_run_and_a_run_is_not_a_sweep(saved, tmp_path):
    _, path = saved
    with pytest.raises(TokdeckError, match="not a benchmark result"):
        load_result_file(path)
    run = tmp_path / "run.json"
    run.write_bytes(orjson.dumps({"completed": 3, "request_throughput": 1.5}))
    assert isinstance(load_history_file(run), RunData)
    with pytest.raises(TokdeckError, match="not a sweep"):
        load_sweep_file(run)


def test_the_listing_marks_sweeps(saved, tmp_path):
    _, path = saved
    (tmp_path / "s.json").write_bytes(path.read_bytes())
    (tmp_path / "r.json").write_bytes(orjson.dumps({"completed": 3}))
    os.utime(tmp_path / "s.json", (1, 1))
    assert [(f.path.name, f.sweep) for f in list_result_files(tmp_path)] == [("r.json", False), ("s.json", True)]


@pytest.mark.parametrize("steps, message", [
    (None, "no steps"), ([1], "step 1 is not an object"), ([{"throughput": 2.0}], "step 1 has no step number"),
    ([{"step": 1, "throughput": "fast"}], "step 1 has no throughput"),
    ([{"step": True, "throughput": 1.0}], "step 1 has no step number")])
def test_unsound_steps_give_one_line(tmp_path, steps, message):
    p = tmp_path / "bad.json"
    p.write_bytes(orjson.dumps({"tokdeck_sweep": 1, "steps": steps}))
    with pytest.raises(TokdeckError) as err:
        load_history_file(p)
    assert str(err.value) == f"{p}: not a sound sweep file: {message}"


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=4), max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_anywhere_in_a_sweep_file_reads_or_fails_in_one_line(saved, data):
    _, path = saved
    doc = orjson.loads(path.read_bytes())
    paths = [p for p in _paths(doc) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths))
        target = doc
        for key in where[:-1]:
            target = target[key] if isinstance(target, (dict, list)) and _has(target, key) else None
        if isinstance(target, (dict, list)) and _has(target, where[-1]):
            target[where[-1]] = data.draw(json_values)
    try:
        sweep = sweep_from_dict(copy.deepcopy(doc), "x", "x.json")
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    assert all(p.throughput >= 0 for p in sweep.points)
    assert all(s.kv_cache_usage is None or 0 <= s.kv_cache_usage <= 1 for s in sweep.samples)


def _has(container, key) -> bool:
    return key in container if isinstance(container, dict) else isinstance(key, int) and key < len(container)


def test_a_saved_runs_server_view_reads_back(saved):
    from tui.core.bench.history import run_from_dict

    result, _ = saved
    step = result.steps[2].result  # 8 streams on 4 places: a queue
    run = run_from_dict(orjson.loads(orjson.dumps(step.to_vllm_json())), "s", "s.json")
    expected = step.server_metrics.samples
    assert [(s.running, s.waiting) for s in run.server] == [(s.running, s.waiting) for s in expected]
    assert [s.t for s in run.server] == pytest.approx([s.t for s in expected], abs=1e-3)
    assert max(s.waiting for s in run.server) == 4
    assert run_from_dict({"completed": 1, "server_metrics": {"samples": {"t": "x"}}}, "n", "n.json").server == ()
