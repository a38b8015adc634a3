"""Endpoint benchmarking: a load client and an OpenAI-compatible simulator to point it at.

Modules (import them directly; this package imports nothing):
- ``sim`` - the simulated OpenAI-compatible streaming server (``tokdeck sim``): ``SimConfig``,
  ``SimServer``/``start_simulator`` (asyncio) and ``ThreadedSimulator`` (own thread), with
  server-side timing truth per request in ``SimRecord``; its capacity model (``capacity``).
- ``simproc`` - the simulator in child processes: ``SimProcess`` (the built-in one of a run),
  ``serving`` (``tokdeck sim --workers N``), ``judge_lateness`` (its lateness in a result).
- ``simboard`` - the simulator's counters shared by its workers: /health, /metrics, lateness.
- ``engine`` - the load engine: ``BenchSpec``, ``BenchmarkRun`` (``events()`` async iterator /
  ``run(on_event)``), ``run_benchmark``, ``BenchmarkThread`` (own thread + loop, for UIs).
- ``client`` - one timed request (``BenchRequest``, backends openai-chat/openai, SSE or plain).
- ``sse`` - the incremental SSE parser and chunk classification.
- ``results`` - ``RequestRecord``, ``RunSnapshot``, ``BenchResult`` (vLLM JSON, CSV) with its
  ``Summary`` and ``ClientHealth``, ``RecordStore``.
- ``metrics`` - vLLM's statistics, goodput, peak concurrency and output tokens/s.
- ``arrivals`` - seeded gamma/Poisson arrival times and ramp-up.
- ``datasets`` - custom JSONL, ShareGPT, random and sonnet prompts for a run.
- ``report`` - the text summary (vLLM's result block plus client health).
- ``options`` - the run options, each declared once: ``RunOptions`` (frozen), the flags of
  `tokdeck bench`/`tokdeck ui`, the Bench pane's form rows, profiles applied, ``validate``.
- ``prepare`` - ``prepare(RunOptions) -> Prepared``: checks, simulator, GET /v1/models,
  tokenizer, prompts and the spec; ``save_result``, ``save_csv``.
"""
