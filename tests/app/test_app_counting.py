"""The dashboard and its counting processes: a death or a hang of one shows on its rows only and heals;
quitting leaves no process.

The rows cl100k_base | llama2, estimate are split between the two processes (the largest file
first, each to the process with the fewest bytes to load)."""

from __future__ import annotations

import os
import signal
import subprocess

from textual.widgets import TextArea

from tokens_pane_testing import settle, table_rows


def _alive(pid: int) -> bool:
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(out) and not out.startswith("Z")


def _app(text: str, **tokens):
    from tui.app.app import make_app
    from tui.core.config import Config, TokensSettings
    from tui.core.tokenizers import Registry

    config = Config(tokens=TokensSettings(enabled=("cl100k_base", "llama2", "estimate"), reference="cl100k_base",
                                          budget_model="gpt-4", **tokens))
    return make_app(text=text, registry=Registry(discover=False, env={}), config=config)


async def test_a_dead_counting_process_shows_on_its_rows_and_is_restarted():
    app = _app("hello world\n")
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        first, other = app.counting.pid_of("cl100k_base"), app.counting.pid_of("llama2")
        assert first != other and app.counting.pid_of("estimate") == other
        os.kill(first, signal.SIGSTOP)  # it must not count again before the rows are looked at
        await pilot.press(*"more ")
        await pilot.pause(0.2)
        assert table_rows(app)["cl100k_base"][0].endswith("…")  # the edit's count has not come back
        os.kill(first, signal.SIGKILL)
        for _ in range(200):
            if app.tokens.interrupted or app.counting.pid_of("cl100k_base") not in (None, first):
                break
            await pilot.pause(0.01)
        notes = {tid: cells[4] for tid, cells in table_rows(app).items()}
        assert "killed by SIGKILL; restarting" in notes["cl100k_base"], notes
        assert not [note for tid, note in notes.items() if tid != "cl100k_base" and "restarting" in note], notes
        await settle(pilot)
        text = app.query_one("#editor", TextArea).text
        rows = table_rows(app)
        for tid in ("cl100k_base", "llama2", "estimate"):
            assert rows[tid][0] == str(app.registry.get(tid).count(text)) and "restarting" not in rows[tid][4]
        assert app.counting.pid_of("cl100k_base") != first and not _alive(first)
        assert app.counting.pid_of("llama2") == other
        assert any("SIGKILL" in n.message for n in app._notifications)


async def test_a_hung_counting_process_shows_on_the_rows_and_is_restarted(monkeypatch):
    from tui.core.tokenizers import counting_client

    monkeypatch.setattr(counting_client, "OVERDUE_S", 0.2)
    monkeypatch.setattr(counting_client, "PING_DEADLINE_S", 0.5)
    app = _app("hello world\n")
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        first, other = app.counting.pid_of("cl100k_base"), app.counting.pid_of("llama2")
        os.kill(first, signal.SIGSTOP)  # alive, never answering: only the watchdog can tell
        await pilot.press(*"more ")
        for _ in range(500):
            if app.tokens.interrupted:
                break
            await pilot.pause(0.01)
        notes = {tid: cells[4] for tid, cells in table_rows(app).items()}
        assert "stopped answering" in notes["cl100k_base"] and "restarting" in notes["cl100k_base"], notes
        assert not [note for tid, note in notes.items() if tid != "cl100k_base" and "restarting" in note], notes
        await settle(pilot)
        text = app.query_one("#editor", TextArea).text
        rows = table_rows(app)
        for tid in ("cl100k_base", "llama2", "estimate"):
            assert rows[tid][0] == str(app.registry.get(tid).count(text)) and "restarting" not in rows[tid][4]
        assert app.counting.pid_of("cl100k_base") != first and not _alive(first)
        assert app.counting.pid_of("llama2") == other


async def test_quitting_the_dashboard_leaves_no_counting_process():
    app = _app("hello")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        pids = list(app.counting.started_pids)
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        await pilot.press("ctrl+q")
    assert not [pid for pid in pids if _alive(pid)]


async def test_the_configured_counting_nice_reaches_the_counting_processes():
    app = _app("hello", counting_nice=5)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.counting.started_pids  # the pane has counted "hello": its processes are up
        for pid in app.counting.started_pids:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                assert fh.read().split(b"\0")[-2] == b"5"  # the child's NICE argument
            assert os.getsid(pid) == os.getsid(0)  # in the dashboard's session
        await pilot.press("ctrl+q")


async def test_a_counting_process_that_keeps_dying_is_reported_and_choosing_tokenizers_starts_it_again():
    app = _app("hello world")
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        for _ in range(4):  # MAX_RESTARTS deaths within a minute, and one more
            pid = app.counting.pid_of("cl100k_base")
            os.kill(pid, signal.SIGKILL)
            for _ in range(1000):
                if app.counting.pid_of("cl100k_base") not in (None, pid) or app.counting.stopped:
                    break
                await pilot.pause(0.01)
        await settle(pilot)
        rows = table_rows(app)
        assert rows["cl100k_base"][0] == "error" and "choosing tokenizers (F5)" in rows["cl100k_base"][4], rows
        text = app.query_one("#editor", TextArea).text
        for tid in ("llama2", "estimate"):  # the other process's rows count on
            assert rows[tid][0] == str(app.registry.get(tid).count(text)) and "F5" not in rows[tid][4], rows
        app.tokens.set_enabled(app.tokens.enabled)  # what saving the F5 list does
        await pilot.press(*"more ")
        await settle(pilot)
        assert app.counting.stopped is None and len(app.counting.started_pids) == 2 + 3 + 1
        text = app.query_one("#editor", TextArea).text
        rows = table_rows(app)
        for tid in ("cl100k_base", "llama2", "estimate"):
            assert rows[tid][0] == str(app.registry.get(tid).count(text)), rows


async def test_an_edits_own_counts_are_drawn_at_once_a_lanes_wait_for_the_next_redraw(monkeypatch):
    """Counts that come in a burst are drawn once per FLUSH_INTERVAL_S; the counts the processes
    make as soon as an edit arrives (inline) are drawn when they come, even right after a redraw."""
    from tui.app import tokens
    from tui.core.tokenizers.counting_client import RowCount, RowCounts, TokenCount

    monkeypatch.setattr(tokens, "FLUSH_INTERVAL_S", 30.0)  # a throttled redraw would come far too late
    app = _app("hello world\n")
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        pane = app.tokens

        def frame(tid: str, n: int, inline: bool):
            row = RowCount(tid, pane.generation, TokenCount(tid, n, 12, True, None), None, 0.001)
            return pane.Counting(RowCounts((row,), inline))

        pane._flush_now()  # a redraw just now: the next throttled one is FLUSH_INTERVAL_S away
        pane.post_message(frame("llama2", 1234, inline=False))
        await pilot.pause()
        assert table_rows(app)["llama2"][0] != "1,234"
        pane.post_message(frame("cl100k_base", 4321, inline=True))
        await pilot.pause()
        rows = table_rows(app)
        assert rows["cl100k_base"][0] == "4,321" and rows["llama2"][0] == "1,234"  # drawn together
