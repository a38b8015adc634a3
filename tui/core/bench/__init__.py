"""Endpoint benchmarking: a load client and an OpenAI-compatible simulator to point it at.

Modules (import them directly; this package imports nothing):
- ``sim`` - the simulated OpenAI-compatible streaming server (``tokdeck sim``): ``SimConfig``,
  ``SimServer``/``start_simulator`` (asyncio) and ``ThreadedSimulator`` (own thread), with
  server-side timing truth per request in ``SimRecord``.
"""
