"""`tokdeck ui` refuses bad files with one line before any UI starts; --help stays light."""

from tokdeck_testing import run_cli


def test_missing_file_is_one_line_error(tmp_path):
    proc = run_cli("ui", str(tmp_path / "nope.txt"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tokdeck: error: {tmp_path / 'nope.txt'}: no such file"


def test_non_utf8_file_is_one_line_error(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    proc = run_cli("ui", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not valid UTF-8" in proc.stderr


def test_missing_dataset_is_one_line_error(tmp_path):
    proc = run_cli("ui", "--pane", "data", str(tmp_path / "set.jsonl"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_no_command_without_a_terminal_prints_help():
    proc = run_cli()
    assert proc.returncode == 0 and "usage: tokdeck" in proc.stdout and " ui " in proc.stdout
