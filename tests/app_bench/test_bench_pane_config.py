"""A broken config never stops the dashboard: the Bench pane shows the file, the line and the problem."""

from __future__ import annotations

from textual.widgets import Select, Static

from bench_pane_testing import ready


async def test_a_broken_config_opens_on_defaults_and_says_where(tmp_path, monkeypatch):
    from tui.app.app import make_app

    path = tmp_path / "config.toml"
    path.write_text('[[profiles]]\nname = "gpu1"\nbase_url = "http://10.0.0.5:8000"\nbakend = "openai"\n')
    monkeypatch.setenv("TOKDECK_CONFIG", str(path))
    app = make_app("bench")  # the real start-up path: config and registry read by the app itself
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        shown = str(app.query_one("#bench-config-problem", Static).render())
        assert shown.startswith(f"{path}:4: unknown key 'bakend' in [profiles]")
        assert "config not loaded" in app.bench.status
        # the built-in simulator profile still works
        assert app.query_one("#bench-profile", Select).value == "simulator"


def test_a_broken_config_is_one_line_for_the_commands(tmp_path):
    from tokdeck_testing import run_cli

    path = tmp_path / "config.toml"
    path.write_text("[tokens]\nreserved_output = \"many\"\n")
    proc = run_cli("count", "-t", "cl100k_base", input="hello", env={"TOKDECK_CONFIG": str(path)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tokdeck: error: {path}:2: tokens.reserved_output must be an integer"
