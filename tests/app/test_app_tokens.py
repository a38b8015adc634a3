"""The Tokens pane driven by keyboard through Pilot: counts equal the core's, toggles, policy, errors, files."""

from __future__ import annotations

import pytest
from textual.widgets import Static, TextArea

from tokens_pane_testing import settle, table_rows
from tui.app.widgets.counts_table import CountsTable
from tui.app.widgets.token_view import TokenLines
from tui.core.config import load_config
from tui.core.tokenizers import bundled_ids, count_texts


async def test_typing_updates_every_row_to_the_core_count(make, bundled):
    app = make()
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.focused is app.query_one("#editor", TextArea)  # the editor has focus on open
        await pilot.press(*"Hello, world!", "enter", *"def f(x):", "enter", "tab", *"return x  # 😀 中文")
        await settle(pilot)
        text = app.query_one("#editor", TextArea).text
        assert text.startswith("Hello, world!\ndef f(x):\n")
        rows = table_rows(app)
        assert list(rows) == bundled_ids() + ["estimate"]
        for count in count_texts(bundled, list(rows), text):
            assert rows[count.tokenizer_id][0] == f"{count.tokens:,}", count
        ref = rows["o200k_base"][0]
        assert rows["o200k_base"][4] == "reference"
        cl = int(rows["cl100k_base"][0])
        assert rows["cl100k_base"][2] == f"{cl - int(ref):+,}"
        assert "estimate" in rows["estimate"][4]
        info = str(app.query_one("#doc-info", Static).render())
        assert f"{len(text):,} chars" in info and f"{len(text.encode()):,} bytes" in info and "3 lines" in info


async def test_token_view_toggles_ids_and_whitespace(make):
    app = make("Hi there\n\tx = 1")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#counts", CountsTable)
        table.move_cursor(row=bundled_ids().index("cl100k_base"))
        await pilot.press("ctrl+t")
        await settle(pilot)
        await pilot.pause(0.3)
        body = app.query_one("#token-text", TokenLines)
        assert body.text == "Hi there\n\tx = 1"
        n = app.registry.get("cl100k_base").count("Hi there\n\tx = 1")
        assert f"cl100k_base: {n} tokens" in str(app.query_one("#token-caption", Static).render())
        await pilot.press("f3")
        await pilot.pause(0.3)
        assert body.text == "Hi·there⏎\n→x·=·1"
        await pilot.press("f2")
        await pilot.pause(0.3)
        ids = app.registry.get("cl100k_base").encode("Hi there\n\tx = 1")
        rendered = body.text
        sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
        assert rendered.startswith("Hi" + str(ids[0]).translate(sub)) and rendered.endswith(str(ids[-1]).translate(sub))
        await pilot.press("ctrl+t")
        assert app.focused is app.query_one("#editor", TextArea)


async def test_partial_utf8_tokens_are_shown_as_bytes(make):
    app = make("😀")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#counts", CountsTable).move_cursor(row=bundled_ids().index("r50k_base"))
        await pilot.press("ctrl+t")
        await pilot.pause(0.3)
        assert app.query_one("#token-text", TokenLines).text == "⟨F0 9F 98⟩⟨80⟩"


async def test_policy_switch_recounts_every_row_and_is_remembered(make, bundled):
    text = "a<|endoftext|>b<|im_start|>"
    app = make(text)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        literal = table_rows(app)
        await pilot.press("f4")
        await settle(pilot)
        parsed = table_rows(app)
        for count in count_texts(bundled, list(parsed), text, "parse"):
            assert parsed[count.tokenizer_id][0] == f"{count.tokens:,}"
        assert int(parsed["cl100k_base"][0]) < int(literal["cl100k_base"][0])
        assert "specials: parse" in str(app.query_one("#doc-info", Static).render())
    assert load_config().tokens.specials == "parse"


async def test_a_broken_tokenizer_shows_its_error_while_the_others_count(tmp_path, monkeypatch):
    from tui.app.app import make_app
    from tui.core.config import Config, TokensSettings
    from tui.core.tokenizers import Registry

    folder = tmp_path / "toks"
    folder.mkdir()
    (folder / "broken.json").write_text('{"model": {"type": "BPE", "vocab": 3}, "added_tokens": []}')
    monkeypatch.setenv("TOKDECK_TOKENIZER_PATH", str(folder))
    registry = Registry()
    config = Config(tokens=TokensSettings(enabled=("cl100k_base", "broken", "estimate")))
    app = make_app(text="some text to count", registry=registry, config=config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        rows = table_rows(app)
        assert rows["broken"][0] == "error" and "broken" in rows["broken"][4]
        assert rows["cl100k_base"][0] == str(registry.get("cl100k_base").count("some text to count"))
        await pilot.press(*"more ")
        await settle(pilot)
        assert table_rows(app)["cl100k_base"][0] == str(registry.get("cl100k_base").count("more some text to count"))


async def test_corrupt_tokenizer_files_show_their_error_in_their_rows(tmp_path, monkeypatch, capfd):
    """A tiktoken file with two tokens of one rank made the Rust core panic in the loading
    worker: the backtrace went over the screen and every row stayed "loading…" for good."""
    from corrupt_tokenizers import CORRUPT
    from tui.app.app import make_app
    from tui.core.config import Config, TokensSettings
    from tui.core.tokenizers import Registry

    folder = tmp_path / "toks"
    folder.mkdir()
    broken = ("duprank.tiktoken", "nobyte.tiktoken", "truncated.json", "wrongshape.json", "emptyspecial.json")
    for name in broken:
        (folder / name).write_bytes(CORRUPT[name][0]())
    monkeypatch.setenv("TOKDECK_TOKENIZER_PATH", str(folder))
    registry = Registry()
    ids = tuple(name.split(".")[0] for name in broken)
    config = Config(tokens=TokensSettings(enabled=("cl100k_base", *ids, "estimate")))
    app = make_app(text="some text \x01 to count", registry=registry, config=config)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        rows = table_rows(app)
        for name, tid in zip(broken, ids):
            assert rows[tid][0] == "error" and CORRUPT[name][1] in app.tokens.errors[tid], rows[tid]
        assert rows["cl100k_base"][0] == str(registry.get("cl100k_base").count("some text \x01 to count"))
    err = capfd.readouterr().err
    assert "panicked" not in err and "Traceback" not in err  # nothing reached the terminal


async def test_open_file_dialog_loads_the_file(make, tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text("\ufefffirst line\nsecond line\n", encoding="utf-8")
    app = make()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+o")
        await pilot.press(*str(path), "enter")
        for _ in range(100):
            if app.query_one("#editor", TextArea).text:
                break
            await pilot.pause(0.05)
        await settle(pilot)
        assert app.query_one("#editor", TextArea).text == "first line\nsecond line\n"  # BOM dropped
        assert table_rows(app)["o200k_base"][0] == str(app.registry.get("o200k_base").count("first line\nsecond line\n"))
        assert str(path) in str(app.query_one("#doc-info", Static).render())
        await pilot.press("ctrl+o", *str(tmp_path / "missing.txt"), "enter")
        await pilot.pause(0.3)
        assert any("no such file" in n.message for n in app._notifications)


async def test_choosing_tokenizers_is_remembered(make):
    app = make("abc")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("tab")  # off the editor so the picker keys are plain
        await pilot.press("f5")
        for _ in range(100):
            if app.screen.__class__.__name__ == "TokenizerPickerScreen":
                break
            await pilot.pause(0.05)
        # deselect everything but the first entry (r50k_base), then save
        await pilot.press("down", *(["space", "down"] * 12))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert list(table_rows(app)) == ["r50k_base"]
    assert load_config().tokens.enabled == ("r50k_base",)


async def test_budget_model_and_reserved_output(make):
    app = make("word " * 1000)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f8")
        await pilot.pause(0.1)
        model = app.screen.query_one("#model")
        model.value = "meta-llama/Llama-2-7b-hf"
        app.screen.query_one("#reserved").value = "512"
        await pilot.press("enter")
        await settle(pilot)
        bar = str(app.query_one("#budget").render())
        n = app.registry.get("llama2").count("word " * 1000)
        assert "→ llama2" in bar and f"{n:,} + 512 reserved / 4,096" in bar
        cfg = load_config().tokens
        assert (cfg.budget_model, cfg.reserved_output) == ("meta-llama/Llama-2-7b-hf", 512)


async def test_a_broken_config_is_reported_not_fatal(make, isolated_env):
    cfg = isolated_env / "config" / "tokdeck" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[tokens]\nspecials = 'literal'\nbogus = 1\n")
    app = make("hello")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert any(f"{cfg}:3" in n.message for n in app._notifications)
        await pilot.press("f4")  # a change is not saved over the file we could not read
        await settle(pilot)
    assert "bogus" in cfg.read_text()


async def test_panes_switch_by_key_and_data_pane_shows_the_file(make, tmp_path):
    data = tmp_path / "set.jsonl"
    data.write_text('{"a": 1}\n')
    app = make(pane="data", data_path=data)
    async with app.run_test(size=(80, 24)) as pilot:
        tabs = app.query_one("#panes")
        assert tabs.active == "data"
        await pilot.pause(0.2)
        assert app.query_one("DataPane").path == data
        await pilot.press("alt+2")
        assert tabs.active == "bench"
        await pilot.press("alt+1")
        assert tabs.active == "tokens" and app.focused is app.query_one("#editor", TextArea)
        await pilot.press("ctrl+n")
        assert tabs.active == "bench"
        await pilot.press("ctrl+n", "ctrl+n")
        assert tabs.active == "tokens" and app.focused is app.query_one("#editor", TextArea)
        await pilot.press("f1")
        await pilot.pause(0.1)
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen.__class__.__name__ != "HelpScreen"


def test_bindings_have_ids_for_keymaps():
    from tui.app.app import TokdeckApp
    from tui.app.tokens import TokensPane

    ids = [b.id for b in [*TokdeckApp.BINDINGS, *TokensPane.BINDINGS]]
    assert all(ids) and len(set(ids)) == len(ids)


async def test_reference_is_the_highlighted_row_and_is_remembered(make):
    app = make("some words here")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.query_one("#counts", CountsTable).move_cursor(row=bundled_ids().index("qwen3"))
        await pilot.press("f9")
        await pilot.pause()
        rows = table_rows(app)
        assert rows["qwen3"][4] == "reference" and rows["qwen3"][2] == ""
        q, o = int(rows["qwen3"][0]), int(rows["o200k_base"][0])
        assert rows["o200k_base"][2] == f"{o - q:+,}"
    assert load_config().tokens.reference == "qwen3"


async def test_a_problem_in_the_counting_process_is_reported_and_counting_goes_on(make):
    app = make("hello")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        with app.counting._lock:
            app.counting._send(app.counting._owner("cl100k_base"), ("no-such-message", 1))  # what a bug on either side looks like to the process
        for _ in range(100):
            if any("no-such-message" in n.message for n in app._notifications):
                break
            await pilot.pause(0.05)
        assert any("no-such-message" in n.message for n in app._notifications)
        await pilot.press(*"more")
        await settle(pilot)
        assert table_rows(app)["cl100k_base"][0] == str(app.registry.get("cl100k_base").count("morehello"))


@pytest.mark.parametrize("pane", ["bench", "data"])
async def test_the_counting_process_starts_only_once_the_tokens_pane_is_shown(pane):
    from tui.app.app import make_app
    from tui.core.config import Config, TokensSettings
    from tui.core.tokenizers import Registry

    registry = Registry(discover=False, env={})
    config = Config(tokens=TokensSettings(enabled=("cl100k_base", "llama2", "estimate")))
    app = make_app(pane, text="hello world", registry=registry, config=config)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        assert app.counting.pids == ()
        assert app.query_one("#panes").active == pane and app.focused is not app.query_one("#editor")
        await pilot.press("alt+1")
        await settle(pilot)
        assert len(app.counting.pids) == 2  # the rows split between two processes
        assert app.focused is app.query_one("#editor", TextArea)
        # counted in the counting process: the UI process never loaded a tokenizer
        assert not any(registry.is_loaded(tid) for tid in ("cl100k_base", "llama2", "estimate"))
        assert table_rows(app)["cl100k_base"][0] == str(registry.get("cl100k_base").count("hello world"))


async def test_the_editor_keeps_the_table_focus_it_was_given_when_a_dialog_closes(make):
    app = make("abc")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.query_one("#counts", CountsTable)
        table.focus()
        await pilot.press("f1")
        await pilot.pause(0.1)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.focused is table  # reopening the pane's screen is not opening the pane


async def test_palette_commands_open_their_pane_and_run_the_action(make):
    app = make("some text", pane="data")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        app.call_later(commands["Bench: History"])
        await pilot.pause(0.2)
        assert app.query_one("#panes").active == "bench"
        assert app.query_one("#bench-views").current == "history"
        app.call_later(commands["Tokens: Tokens/Editor"])
        await pilot.pause(0.2)
        assert app.query_one("#panes").active == "tokens"
        assert app.query_one("#top").current == "token-view"
