"""The server's own view of a run: its Prometheus ``/metrics``, scraped while the run goes on.

vLLM, SGLang and TGI expose how many requests they are running and how many wait in their queue
(and vLLM and SGLang their KV-cache usage). Where a client sees latency climb, the server's queue
says why: at the knee of a sweep the queue starts to grow.

- :class:`ServerSample`: one scrape mapped to three numbers (running, waiting, KV-cache usage
  0..1), whatever the server's names; :func:`sample_of` maps a page's text to it.
- :class:`MetricsScraper`: its own task beside a run, about once a second; ``view(origin)``
  gives the :class:`ServerView` saved with the result (times from the run's start).
- :func:`scraper_for`: the scraper of a prepared run (its URL, and which headers go to it).
- :func:`run_with_server_view`: a run with its scraper beside it on the run's own event loop.

The text is parsed by ``prometheus_client``'s parser; the page is read whole only up to
:data:`MAX_PAGE_BYTES`, and only the lines of the names below are handed to the parser (a
vLLM page holds hundreds of histogram lines that parsing on the run's event loop would cost
milliseconds of timestamps for). A server without metrics gets no view, said once in ``note``.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    import ssl

    from .prepare import Prepared
    from .results import BenchResult

#: one scrape a second: enough to follow a queue that builds over seconds, and a request the server
#: hardly notices
SCRAPE_INTERVAL_S = 1.0
#: a scrape that takes longer is given up (the next one starts on time); the run never waits for one
SCRAPE_TIMEOUT_S = 2.0
#: a bigger page is refused: a real one is tens of kilobytes
MAX_PAGE_BYTES = 4 << 20
#: a page with more series of the names below is refused (their sum would be guesswork)
MAX_SERIES = 256
#: past this many samples every second one is dropped and the interval doubles (a day at 1 Hz)
MAX_SAMPLES = 86_400
#: a running or waiting count above this is not believed
MAX_COUNT = 1_000_000_000


@dataclass(frozen=True)
class EngineNames:
    """The metric names of one server kind, each field's names in order of preference."""

    engine: str
    running: tuple[str, ...]
    waiting: tuple[str, ...]
    kv_cache_usage: tuple[str, ...]  # a fraction 0..1


#: vLLM (``kv_cache_usage_perc`` since V1, ``gpu_cache_usage_perc`` before), SGLang, TGI (which
#: says nothing about its KV cache)
ENGINES = (
    EngineNames("vllm", ("vllm:num_requests_running",), ("vllm:num_requests_waiting",),
                ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
    EngineNames("sglang", ("sglang:num_running_reqs",), ("sglang:num_queue_reqs",), ("sglang:token_usage",)),
    EngineNames("tgi", ("tgi_batch_current_size",), ("tgi_queue_size",), ()),
)
_NAMES = tuple(n for e in ENGINES for n in (*e.running, *e.waiting, *e.kv_cache_usage))
#: the lines of those names: a sample line starts with its name, then labels or a space
_LINES = re.compile(r"^(?:%s)[{ \t][^\n]*" % "|".join(re.escape(n) for n in _NAMES), re.M)


@dataclass(frozen=True)
class ServerSample:
    """The server's state at one moment. ``t``: seconds on the run's (or sweep's) clock; a field
    the server does not report (or reported as nonsense: NaN, negative, out of range) is None."""

    t: float
    running: int | None
    waiting: int | None
    kv_cache_usage: float | None  # 0..1


class MetricsProblem(ValueError):
    """Why a page gives no sample (one line)."""


def sample_of(text: str, model: str | None = None, t: float = 0.0) -> tuple[str, ServerSample]:
    """(engine, sample) of a ``/metrics`` page. Series of several label sets (engines of a
    data-parallel server, several models) add up - running and waiting - or average (KV-cache
    usage); when some carry ``model_name`` equal to ``model``, only those count.
    MetricsProblem when the page has none of the names, or cannot be read."""
    lines = _LINES.findall(text)
    if not lines:
        raise MetricsProblem("none of vLLM's, SGLang's or TGI's metrics in it")
    if len(lines) > MAX_SERIES:
        raise MetricsProblem(f"more than {MAX_SERIES} series of the request and KV-cache metrics")
    from prometheus_client.parser import text_string_to_metric_families

    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    try:
        for family in text_string_to_metric_families("\n".join(lines) + "\n"):
            for s in family.samples:
                series.setdefault(s.name, []).append((s.labels, float(s.value)))
    except Exception as exc:  # noqa: BLE001 - the parser's errors on hostile text are not all ValueError
        raise MetricsProblem(f"not Prometheus text ({type(exc).__name__})") from None
    names = next((e for e in ENGINES if any(n in series for n in (*e.running, *e.waiting, *e.kv_cache_usage))),
                 None)
    if names is None:  # the lines matched but parsed to other names (e.g. a histogram's suffix)
        raise MetricsProblem("none of vLLM's, SGLang's or TGI's metrics in it")

    def values(candidates: tuple[str, ...]) -> list[float] | None:
        for name in candidates:
            found = series.get(name)
            if found:
                mine = [v for labels, v in found if model is not None and labels.get("model_name") == model]
                return mine or [v for _, v in found]
        return None

    def count(candidates: tuple[str, ...]) -> int | None:
        found = values(candidates)
        if not found or not all(math.isfinite(v) and 0 <= v <= MAX_COUNT for v in found):
            return None
        total = math.fsum(found)
        return round(total) if total <= MAX_COUNT else None

    kv = values(names.kv_cache_usage)
    usage = None
    if kv and all(math.isfinite(v) and 0 <= v <= 1 for v in kv):
        usage = math.fsum(kv) / len(kv)
    return names.engine, ServerSample(t, count(names.running), count(names.waiting), usage)


@dataclass(frozen=True)
class ServerView:
    """What the server said during a run: ``samples`` (times from the run's start; negative
    during a warm-up), or ``note`` saying why there are none."""

    url: str  # without credentials
    engine: str | None  # vllm, sglang, tgi
    samples: tuple[ServerSample, ...]
    interval_s: float
    failed_scrapes: int = 0  # scrapes that failed after the first one worked (skipped)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Columns of equal length (compact for long runs); null where a field was not reported."""
        out: dict[str, Any] = {"url": self.url, "engine": self.engine, "interval_s": self.interval_s,
                               "failed_scrapes": self.failed_scrapes, "note": self.note}
        out["samples"] = {"t": [round(s.t, 3) for s in self.samples],
                          "running": [s.running for s in self.samples],
                          "waiting": [s.waiting for s in self.samples],
                          "kv_cache_usage": [s.kv_cache_usage for s in self.samples]}
        return out

    def between(self, start: float, end: float, origin: float) -> ServerView:
        """The samples from ``start`` to ``end`` (this view's clock), re-timed from ``origin``."""
        kept = tuple(ServerSample(s.t - origin, s.running, s.waiting, s.kv_cache_usage)
                     for s in self.samples if start <= s.t <= end)
        return ServerView(self.url, self.engine, kept, self.interval_s, self.failed_scrapes, self.note)

    def line(self) -> str:
        """One line for a summary: the peaks the server reported, or why there is no view."""
        if self.note:
            return self.note
        parts = []
        for label, values in (("running", [s.running for s in self.samples]),
                              ("waiting", [s.waiting for s in self.samples])):
            known = [v for v in values if v is not None]
            if known:
                parts.append(f"{label} {max(known)}")
        usage = [s.kv_cache_usage for s in self.samples if s.kv_cache_usage is not None]
        if usage:
            parts.append(f"KV cache {max(usage) * 100:.0f} %")
        peaks = f"peak {', '.join(parts)}" if parts else "no figures"
        return f"Server view ({self.engine}, {self.url}): {peaks} over {len(self.samples)} sample(s)"


def default_metrics_url(base_url: str) -> str:
    """``/metrics`` at the server's root (a base URL's trailing ``/v1`` is not part of it)."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base + "/metrics"


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port: the API key and headers of a run may go to ``b`` too."""
    from urllib.parse import urlsplit

    try:
        pa, pb = urlsplit(a), urlsplit(b)
        ports = {"http": 80, "https": 443}
        return (pa.scheme.lower() == pb.scheme.lower() and (pa.hostname or "") == (pb.hostname or "")
                and (pa.port or ports.get(pa.scheme.lower())) == (pb.port or ports.get(pb.scheme.lower())))
    except ValueError:
        return False


class MetricsScraper:
    """Scrapes ``url`` from its own task while ``async with scraper:`` runs, or between
    :meth:`start` and :meth:`stop`. Redirects are not followed; proxies are ignored.

    The first scrape decides: when it fails (no answer, an HTTP error, a redirect, a page
    without the metrics), ``note`` says why, once, and scraping ends - a server without
    ``/metrics`` gets no server view. After a first success a failed scrape is skipped and
    counted. ``on_sample`` gets each sample as it comes (times on the ``perf_counter`` clock)."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, ssl: ssl.SSLContext | bool | None = None,
                 model: str | None = None, interval: float = SCRAPE_INTERVAL_S, timeout: float = SCRAPE_TIMEOUT_S,
                 max_samples: int = MAX_SAMPLES, on_sample: Callable[[ServerSample], None] | None = None) -> None:
        from .redact import redact_url

        self.url = url
        self.shown_url = redact_url(url)
        self.headers = dict(headers or {})
        self.ssl = ssl
        self.model = model
        self.interval = interval
        self.timeout = timeout
        self.max_samples = max_samples
        self.on_sample = on_sample
        self.engine: str | None = None
        self.note: str | None = None
        self.failed = 0
        self.samples: list[ServerSample] = []  # times on the perf_counter clock
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> MetricsScraper:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def view(self, origin: float, start: float | None = None, end: float | None = None) -> ServerView:
        """The view from ``start`` to ``end`` (``perf_counter`` times; default: all), with times
        from ``origin``."""
        whole = ServerView(self.shown_url, self.engine, tuple(self.samples), self.interval, self.failed, self.note)
        return whole.between(-math.inf if start is None else start, math.inf if end is None else end, origin)

    async def _loop(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=1, ssl=self.ssl if self.ssl is not None else True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
            first = True
            due = perf_counter()
            while True:
                try:
                    engine, sample = await self._scrape(session)
                except MetricsProblem as exc:
                    if first:
                        self.note = f"no server view: {self.shown_url} {exc}"
                        return
                    self.failed += 1
                else:
                    first = False
                    self.engine = engine
                    self._keep(sample)
                due = max(due + self.interval, perf_counter())
                await asyncio.sleep(due - perf_counter())

    def _keep(self, sample: ServerSample) -> None:
        if len(self.samples) >= self.max_samples:  # bounded memory: half the samples, half the rate
            del self.samples[1::2]
            self.interval *= 2
        self.samples.append(sample)
        if self.on_sample is not None:
            self.on_sample(sample)

    async def _scrape(self, session: Any) -> tuple[str, ServerSample]:
        import aiohttp

        try:
            async with session.get(self.url, headers=self.headers, allow_redirects=False) as resp:
                t = perf_counter()
                if 300 <= resp.status < 400:
                    where = resp.headers.get("Location", "elsewhere")
                    raise MetricsProblem(f"redirects (HTTP {resp.status} to {_shown(where)}); give --metrics-url")
                if resp.status != 200:
                    raise MetricsProblem(f"answered HTTP {resp.status}")
                parts, size = [], 0
                async for part in resp.content.iter_chunked(1 << 16):
                    size += len(part)
                    if size > MAX_PAGE_BYTES:
                        raise MetricsProblem(f"is larger than {MAX_PAGE_BYTES >> 20} MiB")
                    parts.append(part)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            if isinstance(exc, MetricsProblem):
                raise
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            raise MetricsProblem(f"cannot be read ({reason})") from None
        return sample_of(b"".join(parts).decode("utf-8", "replace"), self.model, t)


def _shown(text: str) -> str:
    from .redact import clip, redact_url

    return clip(redact_url(text), 120)


def metrics_url_of(base_url: str, metrics_url: str | None) -> str:
    """The URL to scrape: ``metrics_url`` as given, else ``/metrics`` at the base URL's root."""
    return metrics_url or default_metrics_url(base_url)


def scraper_for(prepared: Prepared, *, interval: float = SCRAPE_INTERVAL_S,
                on_sample: Callable[[ServerSample], None] | None = None) -> MetricsScraper | None:
    """The scraper of a prepared run (None with ``--no-server-metrics``). The run's API key and
    ``--header`` values go to the metrics URL only when it is on the run's own scheme, host
    and port: a metrics URL elsewhere (a monitoring proxy, say) never sees them."""
    from ..endpoint import has_credentials
    from .engine import request_headers, ssl_setting

    o, spec = prepared.options, prepared.spec
    if o.no_server_metrics:
        return None
    url = metrics_url_of(spec.base_url, o.metrics_url)
    headers = {"Accept": "text/plain"}
    if same_origin(url, spec.base_url):
        headers.update((k, v) for k, v in request_headers(spec).items() if k.lower() not in ("content-type", "accept"))
        if has_credentials(url):  # user:password@ is the Authorization header already
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return MetricsScraper(url, headers=headers, ssl=ssl_setting(url, o.insecure, o.ca_bundle), model=spec.model,
                          interval=interval, on_sample=on_sample)


async def run_with_server_view(run: Any, on_event: Callable[[Any], None] | None,
                               scraper: MetricsScraper | None) -> BenchResult:
    """``run.run(on_event)`` with ``scraper`` scraping beside it on the same event loop (no thread
    of its own to delay the run's timestamps); the result holds the server's view, timed from the
    run's start (a warm-up's samples before it)."""
    from dataclasses import replace

    if scraper is None:
        return await run.run(on_event)
    scraper.start()
    try:
        result = await run.run(on_event)
    finally:
        await scraper.stop()
    return replace(result, server_metrics=scraper.view(run.clock_origin))
