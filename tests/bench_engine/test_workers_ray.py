"""Workers as Ray actors (tui.core.bench.ray_backend) on a two-node Ray cluster started inside
the test on loopback: actors land where asked, records merge, and a clock skew of several
seconds on a worker leaves the timeline unchanged. One cluster for the module (~5 s to start),
shut down with its own shutdown (never `ray stop`, which kills every Ray process of the machine)."""

from __future__ import annotations

import json
import os

import pytest

from tokdeck_testing import NETGUARD_DIR, run_cli
from tui.core.bench.arrivals import arrival_times
from tui.core.bench.client import BenchRequest
from tui.core.bench.engine import BenchSpec, TokenCounter
from tui.core.bench.sim import SimConfig, ThreadedSimulator
from tui.core.bench.workers import WorkersRun
from tui.core.errors import TokdeckError

#: Ray's own knobs: no usage reports; this machine's address is loopback (Ray would otherwise
#: rewrite 127.0.0.1 to the machine's outside address when connecting); its Python processes
#: get the tests' network guard
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture(scope="module")
def cluster():
    saved = {k: os.environ.get(k) for k in (*RAY_ENV, "PYTHONPATH")}
    os.environ.update(RAY_ENV, PYTHONPATH=os.pathsep.join(filter(None, [str(NETGUARD_DIR),
                                                                          os.environ.get("PYTHONPATH")])))
    from ray.cluster_utils import Cluster

    head = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "resources": {"node1": 1}, "include_dashboard": False}
    c = Cluster(initialize_head=True, head_node_args=head)
    try:
        second = c.add_node(node_ip_address="127.0.0.1", num_cpus=1, resources={"node2": 1})
        c.wait_for_nodes()
        c.node_ids = {"node1": c.head_node.node_id, "node2": second.node_id}
        yield c
    finally:
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def counter(cl100k):
    return TokenCounter(cl100k)


def prompts(n: int) -> list[BenchRequest]:
    return [BenchRequest(prompt=f"request {i}", output_len=10, input_len=2) for i in range(n)]


def workers(cluster, count: int, **kw):
    from tui.core.bench.ray_backend import RayWorkers

    return RayWorkers(cluster.address, count, **kw)


async def test_actors_land_on_the_nodes_asked_for_and_their_records_merge(cluster, counter):
    with ThreadedSimulator(SimConfig(ttft_ms=20.0, itl_ms=2.0, output_tokens=10)) as url:
        spec = BenchSpec(base_url=url, model="m", max_concurrency=4)
        pinned = workers(cluster, 2, resource="node2")
        result = await WorkersRun(spec, prompts(40), counter, pinned).run()
        spread = workers(cluster, 2)
        await WorkersRun(spec, prompts(8), counter, spread).run()
    assert pinned.nodes == [cluster.node_ids["node2"]] * 2
    assert sorted(spread.nodes) == sorted(cluster.node_ids.values())
    assert [r.index for r in result.records()] == list(range(40)) and result.completed == 40
    assert not result.internal_errors and result.summary.total_output_tokens == 400
    assert result.setup["workers"] == 2 and result.setup["worker_transport"] == "ray"


async def test_a_clock_skew_of_seconds_on_a_worker_leaves_the_timeline_unchanged(cluster, counter):
    """Each actor's clock is off (+6 s, -4 s); the requests still reach the server at the planned
    moments of the coordinator's clock, and the duration is the schedule's."""
    n, rate = 30, 25.0
    server = ThreadedSimulator(SimConfig(ttft_ms=20.0, itl_ms=2.0, output_tokens=10))
    url = server.start()
    try:
        run = WorkersRun(BenchSpec(base_url=url, model="m", request_rate=rate), prompts(n), counter,
                         workers(cluster, 2, clock_skews=(6.0, -4.0)))
        result = await run.run()
        arrivals = sorted(r.arrival for r in server.records)  # the server's clock: CLOCK_MONOTONIC, ours
    finally:
        server.stop()
    planned = [run.clock_origin + t for t in arrival_times(n, rate, 1.0, 0)]
    assert result.completed == n and not result.internal_errors
    assert max(abs(a - p) for a, p in zip(arrivals, planned)) < 0.1
    recs = list(result.records())
    assert max(abs(run.clock_origin + r.start_time - a) for r, a in zip(sorted(recs, key=lambda r: r.start_time),
                                                                        arrivals)) < 0.1
    assert result.duration == pytest.approx(planned[-1] - run.clock_origin + recs[-1].e2el, abs=0.15)


async def test_a_ray_actor_killed_mid_run_fails_what_it_held_and_the_run_goes_on(cluster, counter):
    import ray

    from tui.core.bench.results import RunSnapshot

    n = 40
    with ThreadedSimulator(SimConfig(ttft_ms=20.0, itl_ms=40.0, output_tokens=20)) as url:
        actors = workers(cluster, 2)
        run = WorkersRun(BenchSpec(base_url=url, model="m", request_rate=25.0), prompts(n), counter, actors)
        killed = []
        async for event in run.events():
            if isinstance(event, RunSnapshot) and event.elapsed > 0.5 and event.in_flight and not killed:
                killed.append(actors.actors[0])
                ray.kill(actors.actors[0])
    result = run.result
    reasons = list(result.error_reasons)
    assert len(reasons) == 1 and reasons[0].startswith("worker 1 (Ray actor on node ") and " died: " in reasons[0]
    assert [r.index for r in result.records()] == list(range(n)) and not result.internal_errors
    assert result.setup["dispatched"] == result.completed + result.failed == n


async def test_a_resource_no_node_has_is_a_one_line_error(cluster, counter):
    with pytest.raises(TokdeckError, match=r"^--ray-resource gpu-box: no live node of the Ray cluster has it "
                                           r"\(resources there: CPU, node1, node2\)$"):
        await WorkersRun(BenchSpec(base_url="http://127.0.0.1:9", model="m"), prompts(2), counter,
                         workers(cluster, 2, resource="gpu-box")).run()


def test_tokdeck_bench_runs_its_workers_on_the_ray_cluster(cluster, tmp_path):
    with ThreadedSimulator(SimConfig(ttft_ms=20.0, itl_ms=2.0, output_tokens=8)) as url:
        proc = run_cli("bench", "--base-url", url, "--tokenizer", "cl100k_base", "--num-prompts", "20",
                       "--random-input-len", "16", "--random-output-len", "8", "--disable-tqdm", "--ray-address",
                       cluster.address, "--workers", "2", "--ray-resource", "node1", "--save-result",
                       "--result-dir", str(tmp_path), env=RAY_ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sending from 2 Ray actor(s)" in proc.stderr and "Traceback" not in proc.stderr
    (saved,) = tmp_path.glob("*.json")
    d = json.loads(saved.read_text())
    assert d["worker_transport"] == "ray" and d["workers"] == 2 and d["completed"] == 20 and d["failed"] == 0
