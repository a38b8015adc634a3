"""The sweep's goals against the simulator's capacity model (issue [bench-capacity]).

    .venv/bin/python tests/perf/perf_sweep_capacity.py [--step-duration S]

1. ``--sweep auto`` against a simulator with a maximum batch of 32 and ITL growing 5 % per
   request in the batch finds the capacity within 10 % of the analytic value (``sim.capacity``),
   in at most 10 steps, and reports the knee. Two SLOs: a TTFT limit of 3 x TTFT (no queue: the
   batch bound) and TTFT plus a TPOT limit (the ITL growth's bound).
2. Early stop: a concurrency sweep whose second step breaks the SLO by more than 3x ends there
   and says why.

Prints what was found against the analytic figure, the steps used, the knee, the stop reason and
the wall time of each sweep; exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.core.bench.capacity import SweepSpec  # noqa: E402
from tui.core.bench.options import RunOptions  # noqa: E402
from tui.core.bench.prepare import prepare  # noqa: E402
from tui.core.bench.sim import SimConfig, capacity  # noqa: E402
from tui.core.bench.sweep import SweepRun  # noqa: E402

OUTPUT_TOKENS = 16


def sweep(cfg: SimConfig, **fields):
    fields.update(random_input_len=32, random_output_len=OUTPUT_TOKENS, tokenizer="cl100k_base", disable_tqdm=True)
    fields.setdefault("num_prompts", 500)
    prep = prepare(RunOptions(**fields, given=frozenset(fields)), sim_config=cfg)
    t0 = time.perf_counter()
    try:
        result = asyncio.run(SweepRun(prep).run())
    finally:
        prep.sim.stop()
    return result, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-duration", type=float, default=2.0)
    args = ap.parse_args()
    ok = True
    cfg = SimConfig(ttft_ms=50, itl_ms=10, max_batch=32, itl_growth=0.05)
    print(f"simulator: TTFT {cfg.ttft_ms:g} ms, ITL {cfg.itl_ms:g} ms, max batch {cfg.max_batch}, "
          f"ITL growth {cfg.itl_growth:g}; {OUTPUT_TOKENS}-token answers; steps of {args.step_duration:g} s")
    for goodput, tpot_slo in (((("ttft", 150.0),), None), ((("ttft", 150.0), ("tpot", 20.0)), 20.0)):
        expected = capacity(cfg, OUTPUT_TOKENS, tpot_slo)
        result, wall = sweep(cfg, sweep=SweepSpec("auto"), step_duration=args.step_duration, goodput=goodput)
        found = result.capacity.request_rate if result.capacity else float("nan")
        error = found / expected.rate - 1
        steps = len(result.steps)
        good = abs(error) <= 0.10 and steps <= 10 and result.knee is not None
        ok &= good
        print(f"\nauto, SLO {result.slo.text()}: {'OK' if good else 'MISSED'} ({wall:.0f} s)")
        print(f"  analytic capacity {expected.rate:.1f} req/s ({expected.streams} streams, bound by "
              f"{expected.limited_by}); found {found:.1f} req/s ({error * 100:+.1f} %) in {steps} steps")
        print("  steps: " + ", ".join(f"{s.plan.text()} {'met' if s.verdict.passed else 'broke'}"
                                      for s in result.steps))
        for line in result.answer():
            print(f"  {line}")
    # early stop: 2 places, 65 ms answers: 16 streams wait ~7 turns (~450 ms) for a TTFT limit of 40 ms
    small = SimConfig(ttft_ms=30, itl_ms=5, max_batch=2)
    result, wall = sweep(small, sweep=SweepSpec("concurrency", (1, 16, 32, 64)), step_requests=32,
                         goodput=(("ttft", 40.0),), random_output_len=8)
    good = len(result.steps) == 2 and bool(result.stop_reason) and result.steps[1].verdict.far_off
    ok &= good
    print(f"\nearly stop, concurrency=1,16,32,64 against a batch of 2: {'OK' if good else 'MISSED'} ({wall:.0f} s)")
    print(f"  steps run: {len(result.steps)} of 4; stopped: {result.stop_reason}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
