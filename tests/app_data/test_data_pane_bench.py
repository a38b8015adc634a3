"""Send to Bench (as is, or exported to vLLM's custom format first) and the token pass."""

from __future__ import annotations

import json

from textual.widgets import Input, Select, Static

from data_pane_testing import settle, wait_for
from tui.core.bench.datasets import load_custom, load_sharegpt
from tui.core.datasets import scan_file


def _bench_fields(app) -> tuple[str, str]:
    return (app.query_one("#bench-dataset-path", Input).value,
            app.query_one("#bench-dataset-name", Select).value)


async def test_send_clean_chat_file_as_is(make_data, sample, bundled):
    path = sample("openai-chat.jsonl")
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.query_one("#panes").active == "bench", what="the Bench pane")
        assert _bench_fields(app) == (str(path), "custom")
    assert len(load_custom(path, bundled.get("cl100k_base"), 5)) == 5  # the Bench loader reads it


async def test_send_sharegpt_array_file_as_sharegpt(make_data, sample, bundled):
    path = sample("sharegpt.json")
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        assert app.query_one("DataPane").report.format.container == "json-array"
        note = str(app.query_one("#data-records-note", Static).render())
        assert "one JSON array file" in note
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.query_one("#panes").active == "bench", what="the Bench pane")
        assert _bench_fields(app) == (str(path), "sharegpt")
    assert load_sharegpt(path, bundled.get("cl100k_base"), 5)


async def test_send_file_with_errors_exports_its_valid_records(make_data, sample, bundled):
    path = sample("errors.jsonl")
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.query_one("#panes").active == "bench", what="the Bench pane")
        sent, name = _bench_fields(app)
        assert name == "custom" and sent != str(path) and sent.endswith("errors.prompt.jsonl")
        records = [json.loads(line) for line in open(sent)]
        assert len(records) == pane.report.valid == 7
        assert all(isinstance(r["prompt"], str) for r in records)
        # the exported file is itself clean vLLM custom format
        assert scan_file(sent).invalid == 0
        assert len(load_custom(sent, bundled.get("cl100k_base"), 7)) == 7


async def test_token_pass_runs_after_the_structure_pass(make_data, sample):
    path = sample("sharegpt.jsonl")
    expected = scan_file(str(path), tokenizers=["cl100k_base"])
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        assert not pane.report.tokens
        pane.focus_default()
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.screen.query("SelectionList"), what="the tokenizer picker")
        from textual.widgets import SelectionList

        picker = app.screen.query_one(SelectionList)
        picker.select("cl100k_base")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.report is not None and pane.report.tokens, what="token statistics")
        await settle(pilot)
        got = pane.report.tokens["cl100k_base"]
        want = expected.tokens["cl100k_base"]
        assert (got.prompt_total, got.answer_total, got.records) == (want.prompt_total, want.answer_total, want.records)
        assert got.prompt.p50 == want.prompt.p50 and got.answer.max == want.answer.max
        summary = str(app.query_one("#data-summary", Static).render())
        assert "tokens: cl100k_base" in summary and f"{want.prompt.total:,}" in summary
        assert pane.report.checks.tokenizer_id == "cl100k_base" and not pane.report.checks.estimated
        assert pane._plotted[0].startswith("cl100k_base tokens")
        # prompt and answer lengths each in their own chart, with their own bins
        assert app.query_one("#data-hist").display and app.query_one("#data-hist-answer").display
        assert [c for n, c in pane._plotted[1]] == [tuple(want.prompt.histogram.counts),
                                                   tuple(want.answer.histogram.counts)]


async def test_cancel_the_token_pass_keeps_the_structure_report(make_data, tmp_path):
    path = tmp_path / "many.jsonl"
    n = 300_000
    with open(path, "w") as fh:
        fh.write("".join(f'{{"text": "sample number {i} of a corpus with some words in it"}}\n' for i in range(n)))
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        structure = pane.report
        assert structure.complete and structure.records == n
        pane.tokenizers = ("cl100k_base",)
        pane._start_tokens()  # what choosing a tokenizer with F5 does once the structure pass is done
        await wait_for(pilot, lambda: pane.progress is not None and pane.progress.phase == "tokens",
                       what="token progress")
        assert pane.tokenizing, "the token pass finished before its first progress batch"
        await pilot.press("f6")
        await settle(pilot)
        r = pane.report
        assert not r.complete and r.records == n and r.valid == structure.valid
        assert 0 < r.tokens["cl100k_base"].records < n
        # the cancelled token pass does not stop Send to Bench: the structure pass was complete
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.query_one("#panes").active == "bench", what="the Bench pane")
