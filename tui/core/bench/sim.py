"""A simulated OpenAI-compatible streaming server, for demos, tests and gateway checks.

Endpoints: ``GET /health``, ``GET /metrics``, ``GET /v1/models``, ``POST /v1/chat/completions``
and ``POST /v1/completions`` (streaming SSE and plain JSON). Timing, capacity, output length,
usage reporting and faults come from a :class:`SimConfig`; each finished request leaves a
:class:`SimRecord` with the server's own timing truth, to check a client against.

    async with SimServer(SimConfig(ttft_ms=5, itl_ms=1)) as srv:   # or: await start_simulator(cfg)
        ...  # talk to srv.url + "/v1/..."; srv.records holds the truth
    with ThreadedSimulator(cfg) as url:                               # for sync callers (tests)
        ...

In its own process(es) - the built-in simulator of `tokdeck bench` and the Bench pane, and
`tokdeck sim --workers N` - see :mod:`.simproc`; their shared counters are :mod:`.simboard`.

Text and token counts. Generated text is a seeded stream of common English words, each of
which is one token of the configured bundled tokenizer (checked when the server starts): the
first word of a response (and of the reasoning part) has no leading space, later ones have one.
Re-tokenizing the text of a response with the same tokenizer therefore gives exactly
``completion_tokens``. ``prompt_tokens`` is the exact count of the prompt with that tokenizer
(special-token strings counted as literal text); for chat, of the message contents joined with
"\\n" - no chat template is applied. A prompt given as token ids counts its ids.

Timing. ``arrival`` is ``time.monotonic()`` when the handler starts (where real servers take
their own start); ``received`` is when the request's first bytes reached the server process,
before its HTTP parsing and before requests that arrived at the same time were handled (the
difference is the server's own accept queue). Work starts at arrival, or when a place in the
batch frees up (see Capacity; the wait adds to TTFT, like a real server's queue). The first
content chunk is due ``ttft`` after the start, each later chunk ``itl`` after the previous one's
due time (absolute deadlines, so sleeps never accumulate drift); a write is never earlier than
its deadline. Each SSE event is one write. Jitter: ``jitter="normal"`` (default) draws
N(mean, jitter) clipped at 0; ``"uniform"`` mean ± jitter, clipped at 0; ``"exp"`` the mean plus
an exponential tail whose mean is the jitter (a busy server's long tail).

Capacity. At most ``max_batch`` requests are served at once (None: no limit); later ones wait in
a first-in-first-out queue until a place frees up. Each gap between content chunks is
``itl * (1 + itl_growth * (r - 1))``, ``r`` the requests in the batch when the gap starts (a
decode step slows down as the batch grows; TTFT does not grow; a JSON response keeps the pace
of the batch it entered). Without jitter, a request with ``n`` output tokens in ``m`` chunks
(``m = n`` at one token per chunk) that runs in a batch of ``r`` takes
``T(r) = ttft + (m - 1) * itl * (1 + g * (r - 1))`` (``g`` = ``itl_growth``), and its TPOT is
``(m - 1) * itl * (1 + g * (r - 1)) / (n - 1)``. With ``C`` concurrent streams (closed loop) the
batch is ``r = min(C, max_batch)`` and the throughput ``r / T(r)`` requests/s: it rises up to
``C = max_batch`` - the knee, ``max_batch / T(max_batch)`` - then stays flat while TTFT grows by
the queue wait, about ``(C - max_batch) * T(max_batch) / max_batch``. Under a TPOT SLO ``S``
the batch may grow to ``r_S = floor(1 + (S * (n - 1) / ((m - 1) * itl) - 1) / g)``; the
capacity is ``C* = min(max_batch, r_S)`` streams, or ``C* / T(C*)`` requests/s (at a request
rate ``λ`` the mean batch is ``λ * T(r)`` by Little's law, so this is also the highest rate:
a mean-value figure; random arrivals queue a little before it). :func:`capacity` computes it.

Lateness. The server measures how far behind its own schedule it writes: per content chunk,
its write time minus its deadline, plus the time from reading the request's first bytes to
starting its handler (a busy server's accept queue, which the schedule cannot see). A stream
reports its p50/p99/max in ms as ``usage.tokdeck_sim_late_ms`` (whenever usage is sent), a JSON
response in the header ``X-Tokdeck-Sim-Late-Ms`` and the same usage key; ``GET /health`` gives
them over every write since the start (``late_ms``), with the batch's running and waiting counts
and the requests by outcome. An idle server writes within about a millisecond; one given more
streams than its CPU can write falls behind, and says by how much. ``GET /metrics`` is
Prometheus text with vLLM's names (``vllm:num_requests_running``, ``..._waiting``,
``vllm:kv_cache_usage_perc`` - the batch's fill, ``vllm:request_success_total``,
``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``). Neither needs the API key.

Stream shape (chat): a role chunk ``{"role": "assistant", "content": ""}`` at once on accept
(before any queue wait; not a token), then content chunks (the first ``reasoning_tokens`` tokens
as ``delta.reasoning_content``), then a finish chunk with an empty delta and ``finish_reason``,
then usage, then ``data: [DONE]``. Usage: ``"separate"`` - its own chunk with empty
``choices``, only when the request sets ``stream_options.include_usage``, like OpenAI;
``"final"`` - always inside the finish chunk, whatever the request asked (as some servers
do); ``"none"`` - never, not even in non-streaming responses. Completions streams are the same
without the role chunk.

Output length: ``output_tokens`` (± ``output_tokens_jitter``, uniform) is where the simulated
model stops by itself (``finish_reason: "stop"``); a smaller ``max_tokens`` cuts it
(``"length"``); ``ignore_eos`` runs to ``max_tokens``. With ``output_tokens=None`` every
response runs to ``max_tokens``/``max_completion_tokens`` (``"length"``), or 64 tokens.
No response is longer than ``max_output_tokens`` (default 32,768): a request asking for more
gets that many, ``finish_reason: "length"``, the header ``X-Tokdeck-Output-Cap: N`` and
``usage.tokdeck_output_cap: N``, so a runaway ``max_tokens`` (10^12) cannot tie the server up.
A stream that runs behind its schedule (``itl_ms`` 0) yields to the event loop every
``YIELD_EVERY`` chunks, so other requests, ``/health`` and a shutdown are never starved.

Faults (at most one per request; the rates are fractions of requests and must add up to ≤ 1):
``error_rate`` - an HTTP ``error_status`` JSON error right away; ``cut_rate`` - the connection
is dropped after some content (no finish chunk, no end of the chunked body); ``malformed_rate``
- one ``data:`` line of truncated JSON somewhere among the content chunks, the stream then goes
on normally; ``midstream_error_rate`` - an OpenAI error object as an SSE event after some
content, then the stream ends (with ``[DONE]`` if enabled). For non-streaming requests: cut
drops the connection at the time the response was due, malformed sends truncated JSON with
status 200, a mid-stream error becomes an HTTP error at that time. ``slow_headers_ms`` delays
the response headers of every request.

Models: any requested model name is accepted and echoed back (friendlier for demos) unless
``strict_model`` is set, when names other than ``model`` get a 404 like OpenAI's. With
``api_key`` set, ``/v1/*`` requires ``Authorization: Bearer <key>`` (401 otherwise); ``/health``
stays open. Request errors are 400 with ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import itertools
import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ..endpoint import api_key_problem, control_character
from ..errors import TokdeckError
from ..messages import messages_text
from .metrics import percentile
from .simboard import GENERATION_TOKENS, METRICS_CONTENT_TYPE, BoardRow, SimBoard, render_metrics

if TYPE_CHECKING:  # pragma: no cover
    from aiohttp import web

    from ..tokenizers import Tokenizer

USAGE_MODES = ("separate", "final", "none")
JITTER_KINDS = ("normal", "uniform", "exp")
FAULTS = ("error", "cut", "malformed", "midstream_error")

# Common English words (single dictionary words: no copyright question). Each tokenizer keeps
# those that are one token both at the start of a text and after a space.
_WORDS = """the of and to in is was he for it with as his on be at by had are but from or have an
they which one you were her all she there would their we him been has when who will more no if
out so said what up its about into than them can only other new some could time these two may
then do first any my now such like our over man me even most made after also did many before
must through back years where much your way well down should because each just those people how
too little state good very make world still own see men work long get here between both life
being under never day same another know while last might us great old year off come since
against go came right used take three water light house place small found home land sound hand
high part line end word name form air went read need point page letter mother answer study still
learn plant cover food sun four thought let keep eye never last door tree cross farm hard start
story saw far sea draw left late run close night real north open seem together next white
children begin got walk example ease paper group always music those both mark often until mile
river car feet care second book carry took science eat room friend began idea fish mountain stop
once base hear horse cut sure watch color face wood main enough plain girl usual young ready
above ever red list though feel talk bird soon body dog family direct pose leave song measure
state product black short numeral class wind question happen complete ship area half rock order
fire south problem piece told knew pass farm top whole king size heard best hour better true
during hundred am remember step early hold west ground interest reach fast five sing listen six
table travel less morning ten simple several toward war lay against pattern slow center love
person money serve appear road map science rule govern pull cold notice voice fall power town
fine certain fly unit lead cry dark machine note wait plan figure star box noun field rest
correct able pound done beauty drive stood contain front teach week final gave green oh quick
develop sleep warm free minute strong special mind behind clear tail produce fact street inch
lot nothing course stay wheel full force blue object decide surface deep moon island foot yet
busy test record boat common gold possible plane age dry wonder laugh thousand ago ran check
game shape yes hot miss brought heat snow bed bring sit perhaps fill east weight language among"""

_CYCLE_LEN = 4096  # length of the seeded word stream responses are cut from
DEFAULT_MAX_OUTPUT_TOKENS = 32_768
#: the highest cap a config may set: a 262,144-token JSON response takes ~60 ms to build
MAX_OUTPUT_TOKENS_LIMIT = 262_144
#: chunks written without a sleep before a stream gives the event loop a turn
YIELD_EVERY = 64
#: JSON responses with more tokens are built in a thread, off the event loop
BUILD_OFF_LOOP_TOKENS = 16_384
#: request bodies from this size on are parsed in a thread (the limit is 64 MiB)
PARSE_OFF_LOOP_BYTES = 1 << 20
#: prompts from this length on are counted in a thread: a 1,024-token prompt took 0.5-1.3 ms, so
#: 1,000 arriving at once held every stream's writes for a second; tiktoken counts without the GIL
#: (the default bench run: mean TTFT 2.6-3.2 s -> 1.5-1.8 s on a busy 2-core machine)
COUNT_OFF_LOOP_CHARS = 2_000


@dataclass(frozen=True)
class SimConfig:
    """How the simulated server behaves. Times are in milliseconds, rates are fractions 0..1."""

    model: str = "tokdeck-sim"
    tokenizer: str = "cl100k_base"      # bundled tokenizer id (or a model name it resolves from)
    ttft_ms: float = 150.0              # request start -> first content chunk
    ttft_jitter_ms: float = 0.0         # spread, distribution per ``jitter``
    itl_ms: float = 10.0                # gap between content chunks
    itl_jitter_ms: float = 0.0
    jitter: str = "normal"              # normal (clipped at 0) | uniform | exp (long tail)
    output_tokens: int | None = None    # None: the request's max_tokens / max_completion_tokens, else 64
    output_tokens_jitter: int = 0       # uniform ± spread around output_tokens
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS  # no response is longer (finish_reason "length")
    tokens_per_chunk: int = 1
    usage: str = "separate"             # separate | final | none (see the module docstring)
    send_done: bool = True              # send `data: [DONE]`
    role_chunk: bool = True             # role-only chunk on accept (chat only; not a token)
    reasoning_tokens: int = 0           # first N output tokens as delta.reasoning_content (chat)
    error_rate: float = 0.0             # HTTP error_status JSON error
    error_status: int = 500
    cut_rate: float = 0.0               # connection dropped mid-stream
    malformed_rate: float = 0.0         # one malformed `data:` line mid-stream
    midstream_error_rate: float = 0.0   # an OpenAI error object mid-stream
    slow_headers_ms: float = 0.0        # delay before response headers
    max_batch: int | None = None        # requests served at once; later ones queue (None: no limit)
    itl_growth: float = 0.0             # each gap is itl * (1 + itl_growth * (batch - 1))
    seed: int | None = 0                # None: different draws every run
    strict_model: bool = False          # 404 for model names other than ``model``
    api_key: str | None = field(default=None, repr=False)  # require `Authorization: Bearer KEY`
    max_records: int | None = None      # keep the newest N..2N records, trimmed in batches (None: all)

    def validate(self) -> "SimConfig":
        """Raise TokdeckError (one line) for values that make no sense; return self."""
        def bad(msg: str) -> TokdeckError:
            return TokdeckError(f"simulator: {msg}")

        if not isinstance(self.model, str) or not self.model.strip() or control_character(self.model):
            raise bad("model must be a non-empty name without control characters")
        if self.api_key is not None and api_key_problem(self.api_key):
            raise bad(f"the API key {api_key_problem(self.api_key)}")
        for name in ("ttft_ms", "ttft_jitter_ms", "itl_ms", "itl_jitter_ms", "slow_headers_ms"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(f"{name} must be a number >= 0, not {v!r}")
        if self.jitter not in JITTER_KINDS:
            raise bad(f"jitter must be one of {', '.join(JITTER_KINDS)}, not {self.jitter!r}")
        if self.usage not in USAGE_MODES:
            raise bad(f"usage must be one of {', '.join(USAGE_MODES)}, not {self.usage!r}")
        if not 1 <= self.max_output_tokens <= MAX_OUTPUT_TOKENS_LIMIT:
            raise bad(f"max_output_tokens must be between 1 and {MAX_OUTPUT_TOKENS_LIMIT:,}, "
                      f"not {self.max_output_tokens}")
        if self.output_tokens is not None and not 1 <= self.output_tokens <= self.max_output_tokens:
            raise bad(f"output_tokens must be between 1 and max_output_tokens ({self.max_output_tokens:,}), "
                      f"not {self.output_tokens}")
        if self.output_tokens_jitter < 0:
            raise bad("output_tokens_jitter must be >= 0")
        if self.tokens_per_chunk < 1:
            raise bad(f"tokens_per_chunk must be >= 1, not {self.tokens_per_chunk}")
        if self.reasoning_tokens < 0:
            raise bad("reasoning_tokens must be >= 0")
        rates = [self.error_rate, self.cut_rate, self.malformed_rate, self.midstream_error_rate]
        for name, v in zip(("error_rate", "cut_rate", "malformed_rate", "midstream_error_rate"), rates):
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise bad(f"{name} must be between 0 and 1, not {v!r}")
        if sum(rates) > 1 + 1e-9:
            raise bad(f"the fault rates add up to {sum(rates):g}; at most 1 (one fault per request)")
        if not 400 <= self.error_status <= 599:
            raise bad(f"error_status must be an HTTP error status (400-599), not {self.error_status}")
        if self.max_batch is not None and (isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int)
                                           or self.max_batch < 1):
            raise bad(f"max_batch must be a whole number >= 1, not {self.max_batch!r}")
        if not isinstance(self.itl_growth, (int, float)) or not math.isfinite(self.itl_growth) or self.itl_growth < 0:
            raise bad(f"itl_growth must be a number >= 0, not {self.itl_growth!r}")
        if self.max_records is not None and self.max_records < 0:
            raise bad("max_records must be >= 0")
        return self

    def chunks(self, n: int) -> int:
        """Content chunks of an ``n``-token response (reasoning and content are chunked apart)."""
        k = self.tokens_per_chunk
        r = min(self.reasoning_tokens, n)
        return -(-r // k) + -(-(n - r) // k)

    def describe_faults(self) -> str:
        """One line naming the active faults, e.g. 'errors 5% (HTTP 500), cuts 1%' or 'none'."""
        parts = []
        if self.error_rate:
            parts.append(f"errors {self.error_rate:.3g} (HTTP {self.error_status})")
        if self.cut_rate:
            parts.append(f"cut connections {self.cut_rate:.3g}")
        if self.malformed_rate:
            parts.append(f"malformed chunks {self.malformed_rate:.3g}")
        if self.midstream_error_rate:
            parts.append(f"mid-stream errors {self.midstream_error_rate:.3g}")
        if self.slow_headers_ms:
            parts.append(f"slow headers {self.slow_headers_ms:g} ms")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Capacity:
    """The load a simulator config serves within an SLO (see the module docstring, Capacity)."""

    streams: int         # concurrent requests: the batch size the SLO allows, at most max_batch
    rate: float          # requests per second at that load: streams / e2e
    tpot_ms: float       # TPOT at that load
    e2e_ms: float        # one request's time from start to last token at that load
    limited_by: str      # "max_batch" or "tpot"


def capacity(cfg: SimConfig, output_tokens: int, tpot_slo_ms: float | None = None) -> Capacity:
    """The analytic capacity of ``cfg`` for requests of ``output_tokens`` tokens, without jitter:
    the largest batch whose TPOT meets ``tpot_slo_ms`` (when given), at most ``max_batch``, and
    the request rate that keeps it full (Little's law). A TTFT SLO of at least ``ttft_ms`` allows
    no queue, which is the ``max_batch`` bound. ValueError when nothing bounds the batch (no
    ``max_batch``, and no TPOT SLO with ``itl_growth``) or not even one stream meets the SLO."""
    n = output_tokens
    m = cfg.chunks(n)
    decode_ms = (m - 1) * cfg.itl_ms  # the decoding time of one request alone

    def tpot(r: int) -> float:
        return decode_ms * (1 + cfg.itl_growth * (r - 1)) / (n - 1) if n > 1 else 0.0

    limit = math.inf if cfg.max_batch is None else cfg.max_batch
    limited_by = "max_batch"
    if tpot_slo_ms is not None and n > 1 and decode_ms > 0:
        if tpot(1) > tpot_slo_ms:
            raise ValueError(f"a single stream's TPOT ({tpot(1):g} ms) already exceeds the SLO ({tpot_slo_ms:g} ms)")
        if cfg.itl_growth > 0:
            by_slo = math.floor(1 + (tpot_slo_ms * (n - 1) / decode_ms - 1) / cfg.itl_growth + 1e-9)
            if by_slo < limit:
                limit, limited_by = by_slo, "tpot"
    if math.isinf(limit):
        raise ValueError("no capacity limit: set max_batch, or itl_growth with a TPOT SLO")
    streams = int(limit)
    e2e_ms = cfg.ttft_ms + decode_ms * (1 + cfg.itl_growth * (streams - 1))
    return Capacity(streams=streams, rate=streams / (e2e_ms / 1000.0), tpot_ms=tpot(streams), e2e_ms=e2e_ms,
                    limited_by=limited_by)


@dataclass(frozen=True)
class SimRecord:
    """The server's truth about one finished request. Times in seconds; ``arrival`` is monotonic.

    ``received``: monotonic time the request's first bytes were read by the server (None when
    unknown), at most ``arrival``.
    ``ttft_s``: arrival -> the write of the first content chunk (streaming), None when no content
    was sent or for non-streaming requests. ``itls_s``: gaps between content-chunk writes.
    ``e2e_s``: arrival -> the last content write (streaming) or the response write (JSON).
    ``queue_s``: time waiting for a place in the batch (``max_batch``). ``ttft_scheduled_s``: when the
    first content was due, from arrival. ``completion_tokens``: tokens actually sent.
    ``fault``: None, one of ``error, cut, malformed, midstream_error``, ``bad_request`` (4xx),
    ``client_gone`` (the client disconnected first) or ``cancelled`` (the server shut down first).
    """

    index: int
    path: str
    stream: bool
    arrival: float
    status: int
    fault: str | None = None
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None
    queue_s: float = 0.0
    ttft_s: float | None = None
    ttft_scheduled_s: float | None = None
    itls_s: tuple[float, ...] = ()
    e2e_s: float | None = None
    received: float | None = None


# ----------------------------------------------------------------------------- text source
class TextSource:
    """Pre-encoded single-token words of one tokenizer, and the seeded word stream."""

    def __init__(self, tokenizer: "Tokenizer"):
        self.tokenizer = tokenizer
        words = list(dict.fromkeys(_WORDS.split()))
        anchor = tokenizer.count("the")
        counts_first = tokenizer.count_many(words)
        counts_after = tokenizer.count_many(["the " + w for w in words])
        self.words = [w for w, a, b in zip(words, counts_first, counts_after) if a == 1 and b == anchor + 1]
        if len(self.words) < 16:
            raise TokdeckError(f"simulator: tokenizer {tokenizer.id} has too few single-token words to generate text")
        rng = random.Random(0)
        self.cycle = [rng.randrange(len(self.words)) for _ in range(_CYCLE_LEN)]
        # JSON string literals (with quotes) of each word, with and without a leading space
        self.json_first = [json.dumps(w).encode() for w in self.words]
        self.json_after = [json.dumps(" " + w).encode() for w in self.words]
        sample = self.text(0, _CYCLE_LEN)
        if tokenizer.count(sample) != _CYCLE_LEN:  # pragma: no cover - guarded by the tests
            raise TokdeckError(f"simulator: generated text does not re-tokenize exactly with {tokenizer.id}")

    def word_ids(self, offset: int, n: int) -> list[int]:
        cyc, L = self.cycle, len(self.cycle)
        return [cyc[(offset + j) % L] for j in range(n)]

    def text(self, offset: int, n: int) -> str:
        ids = self.word_ids(offset, n)
        if not ids:
            return ""
        w = self.words
        return w[ids[0]] + "".join(" " + w[i] for i in ids[1:])

    def piece(self, word: int, first: bool) -> str:
        return self.words[word] if first else " " + self.words[word]


_SOURCES: dict[str, TextSource] = {}
_SOURCES_LOCK = threading.Lock()


def text_tokenizer_id(tokenizer: str) -> str:
    """The id of the bundled tokenizer ``tokenizer`` names (an id or a model name), without loading
    it; TokdeckError when there is none, or it has no vocabulary to make text from."""
    from ..tokenizers import default_registry, resolve_tokenizer_id

    reg = default_registry()
    tid = resolve_tokenizer_id(tokenizer, reg)
    if not reg.info(tid).exact:
        raise TokdeckError(f"simulator: tokenizer {tid} has no vocabulary; pick a real one")
    return tid


def text_source(tokenizer: str) -> TextSource:
    """The TextSource of a bundled tokenizer id (or a model name that resolves to one); cached."""
    from ..tokenizers import default_registry

    with _SOURCES_LOCK:
        src = _SOURCES.get(tokenizer)
        if src is not None:
            return src
        src = _SOURCES[tokenizer] = TextSource(default_registry().get(text_tokenizer_id(tokenizer)))
        return src


# ----------------------------------------------------------------------------- helpers
class _BadRequest(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param

    def response(self):
        from aiohttp import web

        return web.Response(status=self.status, body=_error_body(self.message, self.type, self.code, self.param),
                            content_type="application/json")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _error_body(message: str, type_: str, code: Any = None, param: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def _int_field(body: dict, name: str, minimum: int = 1) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise _BadRequest(400, f"'{name}' must be an integer >= {minimum}, got {v!r}", code="invalid_value",
                          param=name)
    return v


def _chat_prompt(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise _BadRequest(400, "'messages' must be a non-empty array", code="invalid_value", param="messages")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _BadRequest(400, "each message must be an object with a 'role'", code="invalid_value",
                              param="messages")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _BadRequest(400, "message 'content' must be a string or an array of parts",
                              code="invalid_value", param="messages")
    return messages_text(messages)


def _completion_prompt(prompt: Any) -> str | list[int]:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        if all(isinstance(x, int) and not isinstance(x, bool) for x in prompt):
            return prompt
        if len(prompt) == 1 and (isinstance(prompt[0], str) or isinstance(prompt[0], list)):
            return _completion_prompt(prompt[0])
        raise _BadRequest(400, "only one prompt per request is supported", code="invalid_value", param="prompt")
    raise _BadRequest(400, "'prompt' must be a string, a one-element array or an array of token ids",
                      code="invalid_value", param="prompt")


def is_loopback_host(host: str) -> bool:
    """True when binding ``host`` keeps the server off the network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _raise_nofile_limit() -> None:
    """Lift the soft open-files limit to the hard one: thousands of streams need descriptors."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - platform dependent
        pass


class _Receipts(asyncio.Protocol):
    """aiohttp's per-connection protocol, wrapped to note when each request's first bytes arrive
    (a new request starts a read with its method; clients do not pipeline). One dict write per
    request, nothing per response chunk."""

    __slots__ = ("_inner", "_rx", "_clock", "_batch")

    def __init__(self, inner: asyncio.Protocol, rx: dict, clock, batch: "_Batch") -> None:
        self._inner = inner
        self._rx = rx
        self._clock = clock
        self._batch = batch

    def connection_made(self, transport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if data[:5] == b"POST ":
            self._rx[self._inner] = self._clock()
        self._inner.data_received(data)

    def eof_received(self):
        return self._inner.eof_received()

    def connection_lost(self, exc) -> None:
        self._rx.pop(self._inner, None)
        self._batch.leave(self._inner)  # a request still queued will not be served
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


@dataclass
class _Plan:
    """What one request will get: drawn once, at arrival, from the request's own RNG."""

    rng: random.Random
    n: int
    finish: str
    fault: str | None
    fault_at: int  # content chunks sent before the fault happens
    capped: bool = False  # the request asked for more than max_output_tokens


_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_DONE = b"data: [DONE]\n\n"


class _Batch:
    """The requests being served: at most ``limit`` at once (None: no limit); the others wait in
    arrival order. A freed place goes straight to the first waiter, so none can overtake; a
    waiter whose client has gone (:meth:`leave`) gives up its turn, as a real server drops it."""

    def __init__(self, limit: int | None, row: BoardRow) -> None:
        self.limit = limit
        self.running = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._queued: dict[object, asyncio.Future] = {}  # connection -> its request's place in the queue
        self._row = row

    async def acquire(self, connection: object) -> float:
        """Take a place for the request on ``connection``; the seconds spent waiting for it (0.0 when
        one was free). ConnectionResetError when the client leaves while it waits."""
        if not self._waiters and (self.limit is None or self.running < self.limit):
            self.running += 1
            self._row.set_batch(self.running, len(self._waiters))
            return 0.0
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        self._queued[connection] = waiter
        self._row.set_batch(self.running, len(self._waiters))
        t0 = loop.time()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the place was handed over just as the request went away
            else:
                with contextlib.suppress(ValueError):  # release() may have dropped it already
                    self._waiters.remove(waiter)
                self._row.set_batch(self.running, len(self._waiters))
            task = asyncio.current_task()
            if waiter.cancelled() and task is not None and not task.cancelling():  # by leave()
                raise ConnectionResetError("the client left while its request was queued") from None
            raise
        finally:
            self._queued.pop(connection, None)
        return loop.time() - t0

    def leave(self, connection: object) -> None:
        waiter = self._queued.pop(connection, None)
        if waiter is not None and not waiter.done():
            waiter.cancel()

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place passes on: running stays the same
                self._row.set_batch(self.running, len(self._waiters))
                return
        self.running -= 1
        self._row.set_batch(self.running, 0)


# ----------------------------------------------------------------------------- the server
class SimServer:
    """The simulator on the running event loop. ``async with SimServer(cfg) as srv`` or
    ``srv = await start_simulator(cfg)``; ``await srv.close()`` when done.

    ``board``/``worker``: the shared counters and this server's row in them, when it is one of
    several worker processes (``reuse_port`` then lets them all listen on one port); by default
    a private one."""

    def __init__(self, cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, *,
                 board: SimBoard | None = None, worker: int = 0, reuse_port: bool = False):
        self.cfg = (cfg or SimConfig()).validate()
        self.host = host
        self.port = port
        self.url = ""
        self.records: list[SimRecord] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._board = board if board is not None else SimBoard.create()
        self._row = self._board.row(worker)
        self._batch = _Batch(self.cfg.max_batch, self._row)
        self._reuse_port = reuse_port
        self._counter = itertools.count()
        self._runner: "web.AppRunner | None" = None
        self._listener: asyncio.AbstractServer | None = None
        self._rx: dict = {}  # connection protocol -> when its latest request's first bytes arrived
        self._tokenizer_id = ""
        self._source: TextSource | None = None
        self._source_task: asyncio.Future[TextSource] | None = None
        self._loop: asyncio.AbstractEventLoop  # set by listen(), before anything is served
        seed = self.cfg.seed
        self._base_seed = seed if seed is not None else random.randrange(1 << 62)
        self._auth = f"Bearer {self.cfg.api_key}" if self.cfg.api_key else None

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> "SimServer":
        """Listen, and return once the server can answer everything."""
        await self.listen()
        await self.ready()
        return self

    async def listen(self) -> "SimServer":
        """Check the tokenizer, listen, and answer at once: the text source loads in the background
        (requests that need it wait; :meth:`ready` waits for it). TokdeckError (one line) when the
        tokenizer is unknown or the address cannot be bound."""
        import errno

        from aiohttp import web

        self._loop = loop = asyncio.get_running_loop()
        self._tokenizer_id = await loop.run_in_executor(None, text_tokenizer_id, self.cfg.tokenizer)
        _raise_nofile_limit()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await runner.setup()
        # our own listener instead of a TCPSite: each connection's protocol is wrapped to stamp
        # when requests arrive (SimRecord.received)
        factory, rx, clock, batch = runner.server, self._rx, loop.time, self._batch
        assert factory is not None  # set up above
        try:
            listener = await loop.create_server(lambda: _Receipts(factory(), rx, clock, batch), self.host, self.port,
                                                backlog=4096, reuse_port=self._reuse_port or None)
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise TokdeckError(f"cannot listen on {self.host}:{self.port}: address already in use") from None
            raise TokdeckError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._runner, self._listener = runner, listener
        host, port = listener.sockets[0].getsockname()[:2]
        self.port = port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self._source_task = loop.run_in_executor(None, text_source, self.cfg.tokenizer)
        return self

    async def ready(self) -> None:
        """Wait until the generated text can be made (raises the TokdeckError that prevents it)."""
        if self._source is None:
            assert self._source_task is not None, "listen() first"
            self._source = await asyncio.shield(self._source_task)

    @property
    def tokenizer_id(self) -> str:
        """The id of the tokenizer in use (``cfg.tokenizer`` may be a model name); "" before start."""
        return self._tokenizer_id

    @property
    def _text(self) -> TextSource:
        assert self._source is not None, "ready() first"
        return self._source

    @property
    def counts(self) -> dict[str, int]:
        """This server's finished requests by outcome ("ok" or a fault name), all of them."""
        return self._row.outcomes()

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()  # stop accepting; open connections are closed by the runner
        if runner is not None:
            await runner.cleanup()
        if self._source_task is not None and not self._source_task.done():
            await asyncio.gather(self._source_task, return_exceptions=True)  # its thread ends on its own

    async def __aenter__(self) -> "SimServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def clear_records(self) -> None:
        self.records = []

    # -------------------------------------------------------------- bookkeeping
    def _record(self, rec: SimRecord, late_ms: list[float] | None = None) -> None:
        # prompt tokens count as processed once the request got into the batch (its prefill)
        self._row.finished(rec.fault or "ok", rec.finish_reason,
                           rec.prompt_tokens if rec.ttft_scheduled_s is not None else 0)
        if late_ms:
            self._row.add_lateness(late_ms)
        limit = self.cfg.max_records
        if limit is None:
            self.records.append(rec)
        elif limit > 0:
            self.records.append(rec)
            if len(self.records) > 2 * limit:
                del self.records[: len(self.records) - limit]

    def _draw(self, rng: random.Random, mean_ms: float, spread_ms: float) -> float:
        """One delay in seconds."""
        if spread_ms <= 0:
            return mean_ms / 1000.0
        kind = self.cfg.jitter
        if kind == "normal":
            v = rng.gauss(mean_ms, spread_ms)
        elif kind == "uniform":
            v = mean_ms + rng.uniform(-spread_ms, spread_ms)
        else:
            v = mean_ms + rng.expovariate(1.0 / spread_ms)
        return max(0.0, v) / 1000.0

    def _plan(self, index: int, max_tokens: int | None, ignore_eos: bool) -> _Plan:
        cfg = self.cfg
        rng = random.Random(self._base_seed * 1_000_003 + index)
        natural = cfg.output_tokens
        if natural is not None and cfg.output_tokens_jitter:
            natural = max(1, natural + rng.randint(-cfg.output_tokens_jitter, cfg.output_tokens_jitter))
        if natural is None:
            n, finish = (max_tokens, "length") if max_tokens else (64, "length")
        elif max_tokens is not None and (ignore_eos or max_tokens <= natural):
            n, finish = max_tokens, "length"
        else:
            n, finish = natural, "stop"
        capped = n > cfg.max_output_tokens
        if capped:
            n, finish = cfg.max_output_tokens, "length"
        u = rng.random()
        fault = None
        for name, rate in zip(FAULTS, (cfg.error_rate, cfg.cut_rate, cfg.malformed_rate, cfg.midstream_error_rate)):
            if u < rate:
                fault = name
                break
            u -= rate
        nchunks = self.cfg.chunks(n)
        fault_at = rng.randint(1, max(1, nchunks - 1)) if fault else 0
        return _Plan(rng=rng, n=n, finish=finish, fault=fault, fault_at=fault_at, capped=capped)

    def _segments(self, offset: int, n: int, reasoning: int) -> Iterator[tuple[bool, bytes, int]]:
        """(is_reasoning, JSON string literal, tokens) per chunk; built lazily, one chunk at a time."""
        src = self._text
        k = self.cfg.tokens_per_chunk
        ids = src.word_ids(offset, n)
        for is_r, lo, hi in ((True, 0, reasoning), (False, reasoning, n)):
            for start in range(lo, hi, k):
                stop = min(start + k, hi)
                if stop - start == 1:
                    lit = (src.json_first if start == lo else src.json_after)[ids[start]]
                else:
                    lit = json.dumps("".join(src.piece(ids[j], j == lo) for j in range(start, stop))).encode()
                yield is_r, lit, stop - start

    def _usage(self, prompt_tokens: int, completion_tokens: int, reasoning: int, capped: bool,
               late_ms: list[float]) -> dict:
        u: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "total_tokens": prompt_tokens + completion_tokens}
        if reasoning:
            u["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        if capped:
            u["tokdeck_output_cap"] = self.cfg.max_output_tokens
        u["tokdeck_sim_late_ms"] = late_summary(late_ms)
        return u

    def _cap_headers(self, plan: _Plan) -> dict[str, str]:
        return {"X-Tokdeck-Output-Cap": str(self.cfg.max_output_tokens)} if plan.capped else {}

    # -------------------------------------------------------------- handlers
    def _check_auth(self, request) -> None:
        if self._auth is not None and request.headers.get("Authorization") != self._auth:
            raise _BadRequest(401, "Incorrect API key provided.", code="invalid_api_key")

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: the whole server's (every worker's) batch, requests and lateness."""
        t = self._board.totals()
        return {"status": "ok", "model": self.cfg.model, "pid": os.getpid(), "workers": self._board.workers,
                "max_batch": self.cfg.max_batch, "itl_growth": self.cfg.itl_growth, "running": t.running,
                "waiting": t.waiting, "requests": t.outcomes, "late_ms": t.late_ms}

    async def _health(self, request):
        from aiohttp import web

        return web.json_response(self.health())

    async def _metrics(self, request):
        from aiohttp import web

        body = render_metrics(self._board.totals(), self.cfg.model, self.cfg.max_batch)
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _models(self, request):
        from aiohttp import web

        try:
            self._check_auth(request)
        except _BadRequest as exc:
            return exc.response()
        return web.json_response({"object": "list", "data": [
            {"id": self.cfg.model, "object": "model", "created": 0, "owned_by": "tokdeck-sim",
             # lets `tokdeck bench` count locally with the tokenizer the simulator really uses
             "tokdeck_tokenizer": self.tokenizer_id}]})

    async def _chat(self, request):
        return await self._handle(request, chat=True)

    async def _completions(self, request):
        return await self._handle(request, chat=False)

    async def _handle(self, request, chat: bool):
        from aiohttp import web

        loop = self._loop
        arrival = loop.time()
        received = self._rx.pop(request.protocol, None)
        if received is not None and received > arrival:
            received = None
        index = next(self._counter)
        path = request.path
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            try:
                self._check_auth(request)
                raw = await request.read()
                try:
                    body = (json.loads(raw) if len(raw) < PARSE_OFF_LOOP_BYTES
                            else await loop.run_in_executor(None, json.loads, raw))
                except (ValueError, UnicodeDecodeError, RecursionError):
                    raise _BadRequest(400, "the request body is not valid JSON", code="invalid_json") from None
                if not isinstance(body, dict):
                    raise _BadRequest(400, "the request body must be a JSON object", code="invalid_json")
                model = body.get("model", self.cfg.model)
                if not isinstance(model, str):
                    raise _BadRequest(400, "'model' must be a string", code="invalid_value", param="model")
                if self.cfg.strict_model and model != self.cfg.model:
                    raise _BadRequest(404, f"The model `{model}` does not exist.", code="model_not_found",
                                      param="model")
                stream = body.get("stream", False)
                if not isinstance(stream, bool):
                    raise _BadRequest(400, "'stream' must be a boolean", code="invalid_value", param="stream")
                n_choices = _int_field(body, "n")
                if n_choices not in (None, 1):
                    raise _BadRequest(400, "only n=1 is supported", code="invalid_value", param="n")
                max_tokens = _int_field(body, "max_completion_tokens") or _int_field(body, "max_tokens")
                opts = body.get("stream_options") or {}
                if not isinstance(opts, dict):
                    raise _BadRequest(400, "'stream_options' must be an object", code="invalid_value",
                                      param="stream_options")
                include_usage = bool(opts.get("include_usage"))
                ignore_eos = bool(body.get("ignore_eos"))
                prompt: str | list[int]
                if chat:
                    if "messages" not in body:
                        raise _BadRequest(400, "missing required parameter: 'messages'",
                                          code="missing_required_parameter", param="messages")
                    prompt = _chat_prompt(body["messages"])
                else:
                    if "prompt" not in body:
                        raise _BadRequest(400, "missing required parameter: 'prompt'",
                                          code="missing_required_parameter", param="prompt")
                    prompt = _completion_prompt(body["prompt"])
            except _BadRequest as exc:
                self._record(SimRecord(index=index, path=path, stream=False, arrival=arrival, received=received,
                                       status=exc.status, fault="bad_request"))
                return exc.response()
            if self._source is None:  # the first requests after a quick start wait for the text
                try:
                    await self.ready()
                except TokdeckError as exc:
                    self._record(SimRecord(index=index, path=path, stream=stream, arrival=arrival, received=received,
                                           status=500, fault="error", model=model))
                    return web.Response(status=500, content_type="application/json",
                                        body=_error_body(str(exc), "server_error", 500))
            prompt_tokens = await self._count_prompt(prompt)
            plan = self._plan(index, max_tokens, ignore_eos)
            rec = dict(index=index, path=path, stream=stream, arrival=arrival, received=received, model=model,
                       prompt_tokens=prompt_tokens)
            if plan.fault == "error":
                await self._sleep_until(arrival + self.cfg.slow_headers_ms / 1000.0)
                self._record(SimRecord(status=self.cfg.error_status, fault="error", **rec))
                return web.Response(status=self.cfg.error_status, content_type="application/json",
                                    body=_error_body("simulated server error", "server_error",
                                                     self.cfg.error_status))
            if stream:
                return await self._stream(request, chat, plan, rec, include_usage)
            return await self._json(request, chat, plan, rec)
        finally:
            self.in_flight -= 1

    async def _count_prompt(self, prompt: str | list[int]) -> int:
        if isinstance(prompt, list):
            return len(prompt)
        tok = self._text.tokenizer
        if len(prompt) < COUNT_OFF_LOOP_CHARS:
            return tok.count(prompt)
        # longer prompts off the loop, so other streams keep their timing
        return await self._loop.run_in_executor(None, tok.count, prompt)

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _reasoning_for(self, chat: bool, n: int) -> int:
        return min(self.cfg.reasoning_tokens, n) if chat else 0

    async def _stream(self, request, chat: bool, plan: _Plan, rec: dict, include_usage: bool):
        from aiohttp import web

        cfg, loop = self.cfg, self._loop
        arrival = rec["arrival"]
        index = rec["index"]
        created = int(time.time())
        model_json = json.dumps(rec["model"]).encode()
        if chat:
            obj = (b'data: {"id":"chatcmpl-sim%d","object":"chat.completion.chunk","created":%d,"model":%s,'
                   % (index, created, model_json))
            content_pre = obj + b'"choices":[{"index":0,"delta":{"content":'
            reasoning_pre = obj + b'"choices":[{"index":0,"delta":{"reasoning_content":'
            tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        else:
            obj = (b'data: {"id":"cmpl-sim%d","object":"text_completion","created":%d,"model":%s,'
                   % (index, created, model_json))
            content_pre = reasoning_pre = obj + b'"choices":[{"index":0,"text":'
            tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
        reasoning = self._reasoning_for(chat, plan.n)
        rng = plan.rng
        offset = rng.randrange(_CYCLE_LEN)
        ttft = self._draw(rng, cfg.ttft_ms, cfg.ttft_jitter_ms)

        resp = web.StreamResponse(status=200, headers={**_SSE_HEADERS, **self._cap_headers(plan)})
        if chat and cfg.role_chunk:
            # the role chunk follows at once: send it with the headers, one syscall instead of two
            # (aiohttp's own small-payload path; without the attribute headers just go first)
            resp._send_headers_immediately = False
        sent = sent_reasoning = 0
        first_write: float | None = None
        last_write = 0.0
        itls: list[float] = []
        behind: list[float] = []  # per content chunk: its write time - its deadline (s)
        late_ms: list[float] | None = None
        fault = None
        queue_s = 0.0
        due = ttft_due = None
        acquired = False
        finish = None
        try:
            if cfg.slow_headers_ms:
                await self._sleep_until(arrival + cfg.slow_headers_ms / 1000.0)
            await resp.prepare(request)
            if chat and cfg.role_chunk:
                await resp.write(obj + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                                       b'"logprobs":null,"finish_reason":null}]}\n\n')
            queue_s = await self._batch.acquire(request.protocol)
            acquired = True
            due = ttft_due = arrival + queue_s + ttft
            chunk_no = 0
            # hot loop: one int comparison per fault kind, a constant gap unless there is jitter
            stop_at = plan.fault_at if plan.fault in ("cut", "midstream_error") else -1
            malformed_at = plan.fault_at if plan.fault == "malformed" else -1
            gap = None if cfg.itl_jitter_ms > 0 else cfg.itl_ms / 1000.0
            growth, batch, board = cfg.itl_growth, self._batch, self._row.values
            write, now_fn, sleep, note_behind = resp.write, loop.time, asyncio.sleep, behind.append
            for is_r, lit, ntok in self._segments(offset, plan.n, reasoning):
                if chunk_no:
                    step = gap if gap is not None else self._draw(rng, cfg.itl_ms, cfg.itl_jitter_ms)
                    due += step * (1.0 + growth * (batch.running - 1)) if growth else step
                delay = due - now_fn()
                if delay > 0:
                    await sleep(delay)
                elif not chunk_no % YIELD_EVERY:  # behind schedule (or no gaps): let the others in
                    await sleep(0)
                if chunk_no == stop_at:
                    fault = plan.fault
                    if fault == "midstream_error":
                        await write(b"data: " + _error_body("simulated mid-stream error", "server_error", 500)
                                    + b"\n\n")
                    break
                now = now_fn()
                await write((reasoning_pre if is_r else content_pre) + lit + tail)
                note_behind(now - due)
                if first_write is None:
                    first_write = now
                else:
                    itls.append(now - last_write)
                last_write = now
                sent += ntok
                board[GENERATION_TOKENS] += ntok
                if is_r:
                    sent_reasoning += ntok
                chunk_no += 1
                if chunk_no == malformed_at:
                    fault = "malformed"
                    await write(content_pre + b'"' + lit[1:-1][:3] + b'\n\n')
            if plan.fault == "cut":  # also when it was due after the last content chunk
                fault = "cut"
                transport = request.transport
                if transport is not None:
                    transport.abort()
                return resp
            if fault in (None, "malformed"):  # the stream went on after a malformed line
                finish = plan.finish
                late_ms = _late_ms(behind, arrival, rec["received"])
                usage = self._usage(rec["prompt_tokens"], sent, sent_reasoning, plan.capped, late_ms)
                fin = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish} if chat else \
                    {"index": 0, "text": "", "logprobs": None, "finish_reason": finish}
                final_usage = b""
                if cfg.usage == "final":
                    final_usage = b',"usage":' + _dumps(usage)
                await resp.write(obj + b'"choices":[' + _dumps(fin) + b"]" + final_usage + b"}\n\n")
                if cfg.usage == "separate" and include_usage:
                    await resp.write(obj + b'"choices":[],"usage":' + _dumps(usage) + b"}\n\n")
            if cfg.send_done:
                await resp.write(_DONE)
            await resp.write_eof()
            return resp
        except ConnectionError:
            fault = "client_gone"
            return resp
        except asyncio.CancelledError:  # the server is shutting down
            fault = "cancelled"
            raise
        finally:
            if acquired:
                self._batch.release()
            self._record(SimRecord(
                status=200, fault=fault, completion_tokens=sent, reasoning_tokens=sent_reasoning,
                finish_reason=finish, queue_s=queue_s,
                ttft_s=None if first_write is None else first_write - arrival,
                ttft_scheduled_s=None if ttft_due is None else ttft_due - arrival,
                itls_s=tuple(itls), e2e_s=None if first_write is None else last_write - arrival, **rec),
                late_ms if late_ms is not None else _late_ms(behind, arrival, rec["received"]))

    async def _json(self, request, chat: bool, plan: _Plan, rec: dict):
        from aiohttp import web

        cfg, loop = self.cfg, self._loop
        arrival = rec["arrival"]
        rng = plan.rng
        offset = rng.randrange(_CYCLE_LEN)
        ttft = self._draw(rng, cfg.ttft_ms, cfg.ttft_jitter_ms)
        gaps = self.cfg.chunks(plan.n) - 1
        decode = (sum(self._draw(rng, cfg.itl_ms, cfg.itl_jitter_ms) for _ in range(gaps))
                  if cfg.itl_jitter_ms > 0 else gaps * cfg.itl_ms / 1000.0)
        if cfg.slow_headers_ms:
            await self._sleep_until(arrival + cfg.slow_headers_ms / 1000.0)
        try:
            queue_s = await self._batch.acquire(request.protocol)
        except ConnectionError:
            self._record(SimRecord(status=499, fault="client_gone", **rec))
            return web.Response(status=499)  # nobody is left to read it
        try:
            # the batch it finds on entry sets the pace of its whole generation
            total = ttft + decode * (1.0 + cfg.itl_growth * (self._batch.running - 1))
            due = arrival + queue_s + total
            await self._sleep_until(due)
            now = loop.time()
            late_ms = _late_ms([now - due], arrival, rec["received"])
            base = dict(queue_s=queue_s, ttft_scheduled_s=queue_s + ttft, e2e_s=now - arrival, **rec)
            if plan.fault == "cut":
                self._record(SimRecord(status=200, fault="cut", **base))
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=200)
            if plan.fault == "midstream_error":
                self._record(SimRecord(status=500, fault="midstream_error", **base))
                return web.Response(status=500, content_type="application/json",
                                    body=_error_body("simulated server error", "server_error", 500))
            reasoning = self._reasoning_for(chat, plan.n)

            def build() -> bytes:
                src = self._text
                r_text = src.text(offset, reasoning)
                c_text = src.text(offset + reasoning, plan.n - reasoning)
                created = int(time.time())
                if chat:
                    message = {"role": "assistant", "content": c_text}
                    if reasoning:
                        message["reasoning_content"] = r_text
                    out = {"id": f"chatcmpl-sim{rec['index']}", "object": "chat.completion", "created": created,
                           "model": rec["model"], "choices": [{"index": 0, "message": message, "logprobs": None,
                                                               "finish_reason": plan.finish}]}
                else:
                    out = {"id": f"cmpl-sim{rec['index']}", "object": "text_completion", "created": created,
                           "model": rec["model"], "choices": [{"index": 0, "text": c_text, "logprobs": None,
                                                               "finish_reason": plan.finish}]}
                if cfg.usage != "none":
                    out["usage"] = self._usage(rec["prompt_tokens"], plan.n, reasoning, plan.capped, late_ms)
                return _dumps(out)

            body = build() if plan.n < BUILD_OFF_LOOP_TOKENS else await loop.run_in_executor(None, build)
            fault = None
            if plan.fault == "malformed":
                fault, body = "malformed", body[: len(body) // 2]
            self._row.values[GENERATION_TOKENS] += plan.n
            self._record(SimRecord(status=200, fault=fault, completion_tokens=plan.n, reasoning_tokens=reasoning,
                                   finish_reason=plan.finish, **base), late_ms)
            return web.Response(status=200, body=body, content_type="application/json",
                                headers={**self._cap_headers(plan), "X-Tokdeck-Sim-Late-Ms": f"{late_ms[0]:.3f}"})
        finally:
            self._batch.release()


def _late_ms(behind_s: list[float], arrival: float, received: float | None) -> list[float]:
    """Each write's lateness in ms: how far behind its deadline it went out, plus the wait between
    reading the request and starting its handler (the accept queue, which the schedule cannot see)."""
    accept = arrival - received if received is not None else 0.0
    return [(max(b, 0.0) + accept) * 1000.0 for b in behind_s]


def late_summary(late_ms: list[float]) -> dict[str, float]:
    """p50/p99/max (ms, to the µs) of one response's write lateness; zeros when it wrote nothing."""
    if not late_ms:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(late_ms)
    return {"p50": round(percentile(ordered, 50), 3), "p99": round(percentile(ordered, 99), 3),
            "max": round(ordered[-1], 3)}


async def start_simulator(cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """A started SimServer on the running loop; ``await server.close()`` when done."""
    return await SimServer(cfg, host, port).start()


class ThreadedSimulator:
    """The same server on its own event loop in a daemon thread, for synchronous callers.

    ``url = sim.start()`` ... ``sim.stop()``, or ``with ThreadedSimulator(cfg) as url:``.
    ``records`` is a snapshot list of the server's records (safe to read from any thread).
    """

    def __init__(self, cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.cfg = (cfg or SimConfig()).validate()
        self.host, self.port = host, port
        self.url = ""
        self._server: SimServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 60.0) -> str:
        if self._thread is not None:
            raise RuntimeError("ThreadedSimulator already started")
        self._thread = threading.Thread(target=self._run, name="tokdeck-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TokdeckError("simulator: did not start in time")
        if self._error is not None:
            err, self._error = self._error, None
            self._thread.join()
            self._thread = None
            raise err
        return self.url

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                self._server = loop.run_until_complete(start_simulator(self.cfg, self.host, self.port))
            except BaseException as exc:  # handed to the starting thread
                self._error = exc
                return
            self._loop = loop
            self.url = self._server.url
            self.port = self._server.port
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._server.close())
        finally:
            self._ready.set()
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._loop = None

    @property
    def server(self) -> SimServer | None:
        return self._server

    @property
    def records(self) -> list[SimRecord]:
        return list(self._server.records) if self._server else []

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._server.counts) if self._server else {}

    def clear_records(self) -> None:
        if self._server is not None:
            self._server.clear_records()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
