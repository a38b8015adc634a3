"""The summary `tokdeck bench` prints says how the load was shaped and why a run ended early."""

from __future__ import annotations

from tokdeck_testing import run_cli

SMALL = ["--random-input-len", "16", "--random-output-len", "4", "--disable-tqdm"]


def test_a_ramp_up_run_says_so_before_and_after():
    proc = run_cli("bench", "--num-prompts", "10", *SMALL, "--ramp-up-strategy", "linear",
                   "--ramp-up-start-rps", "50", "--ramp-up-end-rps", "200")
    assert proc.returncode == 0, proc.stderr
    assert "rate ramp-up linear 50 -> 200 req/s" in proc.stderr and "rate inf" not in proc.stderr
    assert "Ramp-up (RPS):                           linear 50 -> 200" in proc.stdout
    assert "Request rate configured" not in proc.stdout


def test_a_run_cut_by_duration_says_how_much_was_sent():
    proc = run_cli("bench", "--num-prompts", "500", *SMALL, "--request-rate", "20", "--duration", "0.5")
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("Stopped by --duration")]
    sent = int(line.split(": ")[1].split(" of ")[0])
    assert 1 <= sent < 500 and line.endswith(f"{sent} of 500 requests were sent; the figures cover those")
    assert "Successful requests:" in proc.stdout
