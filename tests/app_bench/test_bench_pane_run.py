"""The Bench pane driven by keyboard through Pilot, against the built-in simulator."""

from __future__ import annotations

import json
import os

from textual.widgets import DataTable, Input, ProgressBar, Select, Static, TabbedContent

from bench_pane_testing import cell, ready, run_options, vllm_result, wait_for, write_json
from tui.app.messages import SendToBench
from tui.core.bench.metrics import METRICS


def _text(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def test_start_shows_live_rows_then_the_exact_result(make_bench):
    # ~3 s of run (15 waves of 30 ms + 15 x 12 ms) so a loaded CI machine still sees it going on
    app = make_bench("--num-prompts", "60", "--max-concurrency", "4", "--output-len", "16",
                     "--random-input-len", "32", sim=dict(ttft_ms=30.0, itl_ms=12.0))
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await pilot.pause(0.1)
        assert app.query_one("#panes", TabbedContent).active == "bench"
        assert app.focused is app.query_one("#bench-profile", Select)
        await pilot.press("f5")
        await wait_for(pilot, lambda: pane.thread is not None or pane.session, what="the run to start")
        assert not pane.session, "the run ended before the test saw it going on"
        (sim_pid,) = pane.sim.pids  # the simulator runs in a process of its own
        assert sim_pid != os.getpid()
        table = app.query_one("#bench-stats", DataTable)
        # live: rows filled while the run goes on
        await wait_for(pilot, lambda: pane.thread is None or (cell(table, 0, 2) not in ("", "-")
                                                              and "in flight" in _text(app, "#bench-throughput")),
                       what="live rows")
        assert pane.session == [] and pane.live.records > 0, "the run ended before a live row was drawn"
        await wait_for(pilot, lambda: pane.session, what="the run to finish")
        run = pane.session[0]
        assert not run.result.partial and run.result.completed == 60 and run.result.failed == 0
        assert run.result.client_health.simulator.late_ms.writes == 60 * 16  # its /health, at the end
        await wait_for(pilot, lambda: not os.path.exists(f"/proc/{sim_pid}"), what="the simulator to stop")
        for row, m in enumerate(METRICS):
            st = run.data.stats[m]
            assert cell(table, row, 0) == m.upper()
            assert cell(table, row, 1) == f"{st.mean:,.2f}" and cell(table, row, 4) == f"{st.p99:,.2f}"
        bar = app.query_one("#bench-progress", ProgressBar)
        assert bar.progress == bar.total == 60
        assert "run 1 finished: 60 done, 0 failed" in pane.status
        assert app.query_one("#bench-history", DataTable).row_count == 1
        assert pane.query_one("#bench-charts").builds >= 1


async def test_stop_keeps_a_partial_result_and_saves_it(make_bench, isolated_env):
    app = make_bench("--num-prompts", "400", "--max-concurrency", "2", "--output-len", "40",
                     "--random-input-len", "16", sim=dict(ttft_ms=10.0, itl_ms=5.0))
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await ready(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: pane.live is not None and pane.live.records >= 4, what="some records")
        await pilot.press("f6")
        await wait_for(pilot, lambda: pane.session, what="the stopped run")
        result = pane.session[0].result
        assert result.partial and 4 <= result.completed < 400
        assert "PARTIAL" in _text(app, "#bench-title") and "partial" in pane.status
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.session[0].saved_to is not None, what="the save")
        path = pane.session[0].saved_to
        assert path.parent == isolated_env / "data" / "tokdeck" / "results"
        data = json.loads(path.read_text())
        assert data["partial"] is True and data["completed"] == result.completed
        assert len(data["ttfts"]) == len(data["start_times"]) == result.completed + result.failed
        history = app.query_one("#bench-history", DataTable)
        await pilot.pause(0.1)
        assert history.row_count == 1 and cell(history, 0, 7) == "partial saved"  # one row: the session's run


async def test_profile_with_stored_key_is_masked_and_never_saved(make_bench, tmp_path):
    from tui.core.bench.sim import SimConfig, ThreadedSimulator
    from tui.core.config import Config, Profile

    secret = "sk-very-secret-4242"
    with ThreadedSimulator(SimConfig(ttft_ms=5, itl_ms=2, api_key=secret, model="gated")) as url:
        config = Config(profiles=(Profile(name="gated", base_url=url, api_key=secret),))
        app = make_bench("--num-prompts", "8", "--output-len", "4", "--random-input-len", "16",
                         "--result-dir", str(tmp_path), config=config)
        async with app.run_test(size=(120, 40)) as pilot:
            pane = app.bench
            await pilot.pause(0.1)
            assert app.focused is app.query_one("#bench-profile", Select)
            await pilot.press("enter", "down", "enter")  # the profile Select: open, next, choose
            await pilot.pause(0.1)
            assert app.query_one("#bench-profile", Select).value == "gated"
            info = _text(app, "#bench-profile-info")
            assert "stored in the config" in info and secret not in info
            await pilot.press("f7")  # discover models with the key
            await wait_for(pilot, lambda: app.query_one("#bench-model", Select).value == "gated", what="models")
            app.query_one("#bench-tokenizer", Input).value = "cl100k_base"  # "gated" names no known model
            await pilot.press("f5")
            await wait_for(pilot, lambda: pane.session, what="the run")
            assert pane.session[0].result.completed == 8  # the key was sent (the server demands it)
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: pane.session[0].saved_to is not None, what="the save")
            text = pane.session[0].saved_to.read_text()
            assert pane.session[0].saved_to.parent == tmp_path
            assert secret not in text
            data = json.loads(text)
            for key in ("request_throughput", "mean_ttft_ms", "p99_itl_ms", "output_throughput", "ttfts", "itls"):
                assert key in data
            assert data["model_id"] == "gated" and data["base_url"] == url
            assert secret not in app.export_screenshot()


async def test_open_saved_and_vllm_files_then_compare_with_deltas(make_bench, tmp_path):
    ttfts = [0.1, 0.2, 0.3, 0.4]
    a = write_json(tmp_path / "base.json", vllm_result(ttfts, [[0.01] * 3] * 4, [4] * 4))
    b = write_json(tmp_path / "next.json", vllm_result([t * 2 for t in ttfts], [[0.02] * 3] * 4, [4] * 4,
                                                       request_throughput=0.5))
    os.utime(b, (1_000_000, 1_000_000))  # older: listed second
    app = make_bench()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await ready(pilot)
        await pilot.press("f4")
        assert app.focused is app.query_one("#bench-history", DataTable)
        await pilot.press("shift+tab")
        assert app.focused is app.query_one("#bench-history-path", Input)
        await pilot.press(*str(a), "enter")
        await wait_for(pilot, lambda: pane.shown, what="the opened file")
        assert "base · base.json · acme/chat-7b · vllm result" in _text(app, "#bench-title")
        assert "goodput 0.50 req/s" in _text(app, "#bench-throughput")  # vLLM's old "request_goodput:" key
        table = app.query_one("#bench-stats", DataTable)
        assert cell(table, 0, 1) == "250.00"  # TTFT mean from the per-request arrays
        # the folder: both files listed; select both, compare
        await pilot.press("f4", "shift+tab", *str(tmp_path), "enter")
        history = app.query_one("#bench-history", DataTable)
        await wait_for(pilot, lambda: history.row_count == 2, what="the folder listing")
        await pilot.press("tab")
        history.move_cursor(row=0)
        await pilot.press("space", "down", "space")
        await wait_for(pilot, lambda: all(isinstance(pane.files.get(str(p)), type(pane.shown[0])) for p in (a, b)),
                       what="both files opened")
        assert [k for k in pane.selected] and len(pane.selected) == 2
        await pilot.press("f8")
        await wait_for(pilot, lambda: len(pane.shown) == 2, what="the comparison")
        rows = {cell(table, r, 0): [cell(table, r, c) for c in range(1, 3)] for r in range(table.row_count)}
        assert [r.name for r in pane.shown] == ["base", "next"]
        assert "Comparing base · next (deltas against base)" in _text(app, "#bench-title")
        assert rows["TTFT mean (ms)"] == ["250.00", "500.00 (+250.00, +100.0%)"]
        assert rows["requests/s"] == ["0.40", "0.50 (+0.10, +25.0%)"]
        assert rows["completed"] == ["4", "4 (+0, +0.0%)"]
        assert pane.query_one("#bench-charts")._runs and len(pane.query_one("#bench-charts")._runs) == 2


async def test_send_to_bench_fills_the_dataset_and_shows_the_pane(make_bench, counting, tmp_path):
    from tui.app.app import make_app
    from tui.core.config import Config

    data = tmp_path / "chats.jsonl"
    data.write_text('{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "hello"}]}\n')
    app = make_app("tokens", registry=make_bench().registry, config=Config(), counting=counting)
    async with app.run_test(size=(100, 30)) as pilot:
        app.tokens.post_message(SendToBench(data, "sharegpt"))
        await wait_for(pilot, lambda: app.query_one("#bench-dataset-path", Input).value == str(data),
                       what="the dataset handed to the Bench pane")  # a fixed pause failed under load
        assert app.query_one("#panes", TabbedContent).active == "bench"
        assert app.query_one("#bench-dataset-path", Input).value == str(data)
        assert app.query_one("#bench-dataset-name", Select).value == "sharegpt"
        assert "from the Data pane" in app.bench.status
        app.bench.use_dataset(data, "prompt-completion")
        assert app.query_one("#bench-dataset-name", Select).value == "custom"


async def test_a_dataset_handed_to_bench_before_the_first_refresh_keeps_the_bench_pane(make_bench, counting, tmp_path):
    """The app shows its initial pane after the first refresh; a dataset handed over before that ran
    (under load in CI) was switched back to the Tokens pane. The deferred initial pane gives way."""
    from tui.app.app import make_app
    from tui.core.config import Config

    data = tmp_path / "chats.jsonl"
    data.write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}\n')
    app = make_app("tokens", registry=make_bench().registry, config=Config(), counting=counting)
    async with app.run_test(size=(100, 30)) as pilot:
        app.on_send_to_bench(SendToBench(data, "sharegpt"))
        await pilot.pause()  # the Bench pane's field takes the focus
        app._show_initial_pane()  # the deferred call, run late
        await pilot.pause()
        assert app.query_one("#panes", TabbedContent).active == "bench"
        assert app.query_one("#bench-dataset-path", Input).value == str(data)


async def test_broken_config_is_shown_never_a_crash(bundled, tmp_path, monkeypatch):
    from tui.app.app import make_app

    cfg = tmp_path / "config.toml"
    cfg.write_text('[[profiles]]\nname = "gpu"\nbase_url = "http://x"\nbackend = "grpc"\n')
    monkeypatch.setenv("TOKDECK_CONFIG", str(cfg))
    app = make_app("bench", registry=bundled, bench_options=run_options("--num-prompts", "4"))
    async with app.run_test(size=(100, 30)) as pilot:
        problem = _text(app, "#bench-config-problem")
        assert problem == f"{cfg}:4: profiles.backend must be openai-chat or openai, not 'grpc'"
        assert app.query_one("#bench-profile", Select).value == "simulator"
        await ready(pilot)
        await pilot.press("f5")  # model names resolve through the config's aliases: refused, with the reason
        await wait_for(pilot, lambda: not app.bench.preparing, what="the refusal")
        assert app.bench.status == problem and app.bench.thread is None
        await pilot.press("f4")
        assert app.query_one("#bench-views").current == "history"


async def test_start_flag_runs_and_saves_with_the_given_name(make_bench, tmp_path):
    app = make_bench("--num-prompts", "12", "--output-len", "4", "--random-input-len", "16", "--max-concurrency", "3",
                     "--save-result", "--result-dir", str(tmp_path), "--result-filename", "first.json",
                     "--request-rate", "200", start=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.bench.session, what="the run started by --start")
        run = app.bench.session[0]
        assert run.saved_to == tmp_path / "first.json"
        data = json.loads(run.saved_to.read_text())
        assert data["completed"] == 12 and data["max_concurrency"] == 3 and data["request_rate"] == 200
        assert "ttfts" not in data  # --save-result without --save-detailed, as tokdeck bench
        assert app.query_one("#bench-num-prompts", Input).value == "12"


async def test_bad_form_value_names_the_field(make_bench):
    app = make_bench()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.query_one("#bench-request-rate", Input).value = "fast"
        await pilot.press("f5")
        await pilot.pause()
        assert app.bench.status == "request rate: 'fast' is not a number" and app.bench.thread is None
        app.query_one("#bench-request-rate", Input).value = "inf"
        app.query_one("#bench-dataset-name", Select).value = "custom"
        await pilot.press("f5")
        await wait_for(pilot, lambda: not app.bench.preparing, what="the refusal")
        assert "--dataset-name custom needs --dataset-path" in app.bench.status


def test_ui_rejects_bad_run_flags_in_one_line():
    from tokdeck_testing import run_cli

    proc = run_cli("ui", "--pane", "bench", "--dataset-name", "custom")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "tokdeck: error: --dataset-name custom needs --dataset-path FILE"


async def test_errors_panel_counts_reasons_live_and_after(make_bench):
    # ~4 s of run (100 requests, 2 at a time, ~80 ms each): a loaded machine still sees it going on
    app = make_bench("--num-prompts", "100", "--max-concurrency", "2", "--output-len", "8", "--random-input-len", "16",
                     sim=dict(ttft_ms=40.0, itl_ms=5.0, error_rate=0.3, error_status=503))
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await ready(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: pane.session or "request " in _text(app, "#bench-errors"), what="live errors")
        assert not pane.session, "the run ended before the errors panel was drawn"
        live_text = _text(app, "#bench-errors")
        assert live_text.startswith("errors: ") and "HTTP 503" in live_text  # reasons, then the latest messages
        await wait_for(pilot, lambda: pane.session, what="the run")
        result = pane.session[0].result
        assert result.failed > 0 and sum(result.error_reasons.values()) == result.failed
        final = _text(app, "#bench-errors")
        (reason, n), = result.error_reasons.items()
        assert final.startswith(f"errors: {n:,}× {reason[:60]}")
        assert app.query_one("#bench-errors", Static).has_class("-errors")


async def test_client_bottleneck_warning_is_visible(make_bench, tmp_path):
    from bench_pane_testing import fixed_result

    data = fixed_result().to_vllm_json(detailed=True)
    data["client_health"] = dict(data["client_health"], client_bottleneck=True,
                                 warning="the client was the bottleneck: its event loop ran up to 40.0 ms late")
    path = write_json(tmp_path / "slow-client.json", data)
    app = make_bench()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        app.bench.open_path(path)
        await wait_for(pilot, lambda: app.bench.shown, what="the opened file")
        health = app.query_one("#bench-health", Static)
        assert str(health.render()).startswith("the client was the bottleneck") and health.has_class("-warn")
        assert _text(app, "#bench-errors").startswith("errors: 4× HTTP 503: server overloaded")


async def test_a_result_file_with_values_of_the_wrong_type_opens_as_far_as_it_can(make_bench, tmp_path):
    """Values of the wrong type are unknown, never a crash of the pane (they used to be)."""
    path = write_json(tmp_path / "odd.json", {
        "completed": "lots", "failed": 2, "request_throughput": 2.0, "model_id": 5, "num_prompts": "ten",
        "client_health": [1, 2], "error_reasons": {"HTTP 500": "many", "HTTP 503": 3}, "internal_errors": "boom",
        "partial": "no", "mean_ttft_ms": "fast", "p99_ttft_ms": 12.0})
    app = make_bench()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        app.bench.open_path(path)
        await wait_for(pilot, lambda: app.bench.shown, what="the opened file")
        assert _text(app, "#bench-title") == "odd · odd.json · ? · tokdeck result"
        assert _text(app, "#bench-throughput").startswith("0 done · 2 failed · 2.00 req/s · - out tok/s")
        assert _text(app, "#bench-health") == "client health: not recorded (vLLM result)"
        assert app.bench.shown[0].error_reasons == {"HTTP 503": 3}
        assert _text(app, "#bench-errors").startswith("no per-request data in this file")
        table = app.query_one("#bench-stats", DataTable)
        assert [cell(table, 0, c) for c in range(5)] == ["TTFT", "-", "-", "-", "12.00"]
        history = app.query_one("#bench-history", DataTable)
        await wait_for(pilot, lambda: history.row_count == 1, what="the history row")
        assert cell(history, 0, 3) == "0"


async def test_profile_flag_selects_it_models_use_openai_api_key_and_csv_is_written(make_bench, tmp_path,
                                                                                     monkeypatch):
    """`tokdeck ui --pane bench --profile NAME --csv F`: the profile is selected, Discover models sends
    OPENAI_API_KEY as a run would (the profile names no key), and the CSV is written when the run ends."""
    from tui.core.bench.sim import SimConfig, ThreadedSimulator
    from tui.core.config import Config, Profile

    secret = "sk-from-the-environment-99"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    csv_path = tmp_path / "runs" / "per-request.csv"
    with ThreadedSimulator(SimConfig(ttft_ms=5, itl_ms=2, api_key=secret, model="gated")) as url:
        config = Config(profiles=(Profile(name="lab", base_url=url),))
        app = make_bench("--profile", "lab", "--num-prompts", "6", "--output-len", "4", "--random-input-len", "16",
                         "--tokenizer", "cl100k_base", "--csv", str(csv_path), config=config)
        async with app.run_test(size=(120, 40)) as pilot:
            pane = app.bench
            await ready(pilot)
            assert app.query_one("#bench-profile", Select).value == "lab"
            assert "OPENAI_API_KEY (set)" in _text(app, "#bench-profile-info")
            await pilot.press("f7")
            await wait_for(pilot, lambda: app.query_one("#bench-model", Select).value == "gated", what="models")
            await pilot.press("f5")
            await wait_for(pilot, lambda: pane.session and csv_path.exists(), what="the run and its CSV")
            assert pane.session[0].result.completed == 6
            rows = csv_path.read_text().splitlines()
            assert len(rows) == 1 + 6 and secret not in csv_path.read_text()


def test_ui_rejects_an_unknown_profile_in_one_line(tmp_path):
    from tokdeck_testing import run_cli

    config = tmp_path / "config.toml"
    config.write_text('[[profiles]]\nname = "gpu1"\nbase_url = "http://10.0.0.5:8000"\n')
    proc = run_cli("ui", "--pane", "bench", "--profile", "gpu2", env={"TOKDECK_CONFIG": str(config)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tokdeck: error: no profile named 'gpu2' in {config} (profiles: gpu1)"


async def test_a_request_left_unaccounted_is_shown_as_an_internal_error(make_bench, monkeypatch):
    """Made impossible by the engine; if it ever happens, the pane says so and never passes it silently."""
    from tui.core.bench.engine import BenchmarkRun

    record = BenchmarkRun._record
    monkeypatch.setattr(BenchmarkRun, "_record", lambda self, rec: rec.index == 0 or record(self, rec))
    app = make_bench("--num-prompts", "6", "--output-len", "4", "--random-input-len", "16", start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await wait_for(pilot, lambda: pane.session, what="the run to finish")
        (problem,) = pane.session[0].result.internal_errors
        assert problem.startswith("accounting: 6 request(s) sent but 5 completed")
        await pilot.pause(0.1)
        assert f"INTERNAL ERROR: {problem}" in _text(app, "#bench-errors")
        assert "INTERNAL ERROR: accounting" in pane.status
        assert any(n.severity == "error" and n.message == problem for n in app._notifications)


async def test_status_lines_that_stay_one_line_do_not_relayout_the_screen(make_bench, monkeypatch):
    """The drain tick rewrites the status lines 4 times a second; a layout of the screen costs tens of ms."""
    app = make_bench()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        pane = app.bench
        pane.action_show_view("run")  # where a run shows them
        await pilot.pause()
        layouts = []
        static = pane.query_one("#bench-throughput", Static)
        update = static.update
        monkeypatch.setattr(static, "update",
                            lambda text, layout=True: (layouts.append(layout), update(text, layout=layout)))
        pane._set_text("#bench-throughput", "10 done · 0 failed")
        await pilot.pause()
        pane._set_text("#bench-throughput", "20 done · 0 failed")
        pane._set_text("#bench-throughput", "20 done · 0 failed")  # unchanged: no update at all
        pane._set_text("#bench-throughput", "x" * 300)  # wraps: its height changes
        await pilot.pause()
        assert layouts == [True, False, True]
        assert static.size.height > 1


async def test_a_plain_run_charts_the_servers_own_view_live_and_keeps_it(make_bench):
    # 2 places for 4 streams: the simulator's /metrics shows 2 running and 2 waiting; ~4 s of run
    app = make_bench("--num-prompts", "40", "--max-concurrency", "4", "--output-len", "16",
                     "--random-input-len", "16", sim=dict(ttft_ms=30.0, itl_ms=12.0, max_batch=2))
    async with app.run_test(size=(120, 60)) as pilot:
        pane = app.bench
        await ready(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: pane.thread is not None or pane.session, what="the run to start")
        chart = app.query_one("#bench-server")
        await wait_for(pilot, lambda: pane.session or not chart.has_class("-hidden"), what="the live server view")
        assert not pane.session, "the run ended before the server view was drawn"
        live = list(pane.server_samples)
        assert live and all(0 <= s.t < 30 and s.running <= 2 for s in live)  # on the run's timeline
        await wait_for(pilot, lambda: pane.session, timeout=60, what="the run to finish")
        view = pane.session[0].result.server_metrics
        assert view.engine == "vllm" and view.note is None and max(s.waiting for s in view.samples) >= 1
        assert pane.session[0].data.server == view.samples and not chart.has_class("-hidden")  # still shown


async def test_a_server_without_metrics_gets_no_server_view_and_says_so(make_bench):
    app = make_bench("--num-prompts", "40", "--max-concurrency", "4", "--output-len", "16",
                     "--random-input-len", "16", "--metrics-url", "http://127.0.0.1:9/metrics",
                     sim=dict(ttft_ms=30.0, itl_ms=12.0, max_batch=2))
    async with app.run_test(size=(120, 60)) as pilot:
        pane = app.bench
        await ready(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: "no server view: http://127.0.0.1:9/metrics" in pane.status, what="the note")
        await wait_for(pilot, lambda: pane.session, timeout=60, what="the run to finish")
        assert pane.session[0].result.server_metrics.note.startswith("no server view: http://127.0.0.1:9/metrics")
        assert app.query_one("#bench-server").has_class("-hidden") and not pane.server_samples
