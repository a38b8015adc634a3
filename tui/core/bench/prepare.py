"""The run options shared by `tokdeck bench` and the Bench pane, and everything before a run.

The flags are vLLM `bench serve`'s; :func:`add_run_arguments` defines them once for the command
line and for `tokdeck ui --pane bench` (the pane builds the same namespace from its form), and
:func:`prepare` turns a namespace into a ready run: checks, the simulator when no base URL is
given, GET /v1/models, the local tokenizer, the prompts and the :class:`BenchSpec`."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from ..endpoint import (api_key_problem, base_url_problem, env_name_problem, has_credentials, header_name_problem,
                        header_value_problem, shown_url)
from .schedule import MAX_WORKERS

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path


def _number(cast, ok, need: str, allow_inf: bool = False):
    """An argparse type: ``cast`` the text, then require ``ok(value)`` (``need`` says what).
    NaN never passes, nor infinity unless ``allow_inf``."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if cast is int else ''}number") from None
        if value != value or (value in (float("inf"), float("-inf")) and not allow_inf) or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {need}, not {text}")
        return value
    return parse


#: bounds that keep a typo from exhausting memory before anything is sent: every request, warm-up
#: and concurrency slot costs memory up front, and prompts are made locally token by token
MAX_REQUESTS = 1_000_000
MAX_WARMUPS = 10_000
MAX_CONCURRENCY = 100_000
MAX_PROMPT_TOKENS = 1_048_576

_positive_int = _number(int, lambda v: v >= 1, "at least 1")
_requests = _number(int, lambda v: 1 <= v <= MAX_REQUESTS, f"between 1 and {MAX_REQUESTS:,}")
_concurrency = _number(int, lambda v: 1 <= v <= MAX_CONCURRENCY, f"between 1 and {MAX_CONCURRENCY:,}")
_warmups = _number(int, lambda v: 0 <= v <= MAX_WARMUPS, f"between 0 and {MAX_WARMUPS:,}")
_workers = _number(int, lambda v: 1 <= v <= MAX_WORKERS, f"between 1 and {MAX_WORKERS}")
_prompt_len = _number(int, lambda v: 1 <= v <= MAX_PROMPT_TOKENS, f"between 1 and {MAX_PROMPT_TOKENS:,}")
_prefix_len = _number(int, lambda v: 0 <= v <= MAX_PROMPT_TOKENS, f"between 0 and {MAX_PROMPT_TOKENS:,}")
_positive_float = _number(float, lambda v: v > 0, "a finite number > 0")
_shape = _number(float, lambda v: v > 0, "> 0 (or inf: even gaps)", allow_inf=True)
_rate = _number(float, lambda v: v > 0, "> 0 (or inf)", allow_inf=True)
_ratio = _number(float, lambda v: 0 <= v < 1, "in [0, 1)")
_temperature = _number(float, lambda v: v >= 0, "a finite number >= 0")


class _Given(argparse.Action):
    """Stores the value and notes that it was given (so a --profile does not override it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Every run flag of `tokdeck bench` (also taken by `tokdeck ui --pane bench`)."""
    p.add_argument("--profile", metavar="NAME",
                   help="an endpoint from [[profiles]] in the config: its base URL, backend, model, API key, "
                        "headers and TLS settings fill in what the command line leaves out (in the "
                        "dashboard: the Bench pane opens with it selected)")
    e = p.add_argument_group("endpoint")
    e.add_argument("--backend", choices=("openai-chat", "openai"), default="openai-chat", action=_Given,
                   help="openai-chat: /v1/chat/completions (default); openai: /v1/completions")
    e.add_argument("--base-url", metavar="URL",
                   help="server base URL, e.g. http://gpu1:8000 (a trailing /v1 is fine); "
                        "omitted: the built-in simulator")
    e.add_argument("--endpoint", metavar="PATH", help="API path (default per backend)")
    e.add_argument("--model", help="model name to request (default: the first of GET /v1/models)")
    e.add_argument("--tokenizer", metavar="ID",
                   help="tokenizer id or model name for local token counts (default: resolved from --model, "
                        "else the estimate)")
    e.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the API key (default OPENAI_API_KEY); never printed or saved")
    e.add_argument("--header", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="extra HTTP header (repeatable)")
    e.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    e.add_argument("--ca-bundle", metavar="FILE", help="CA certificates (PEM) to verify TLS with")
    e.add_argument("--timeout", type=_positive_float, default=600.0, metavar="S",
                   help="read timeout: longest silence within a response (default 600 s)")
    e.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                   help="connect timeout (default 10 s)")
    e.add_argument("--no-stream", action="store_true", help="non-streaming requests (TTFT = E2EL, no ITL/TPOT)")

    d = p.add_argument_group("dataset")
    d.add_argument("--dataset-name", choices=("random", "custom", "sharegpt", "sonnet"), default="random",
                   help="random (default), custom (JSONL: prompt/output_tokens, messages, or message arrays), "
                        "sharegpt, sonnet (bundled text)")
    d.add_argument("--dataset-path", metavar="FILE", help="the file for custom and sharegpt")
    d.add_argument("--num-prompts", type=_requests, default=1000, metavar="N",
                   help=f"number of requests (default 1000, at most {MAX_REQUESTS:,})")
    d.add_argument("--input-len", type=_prompt_len, metavar="N", help="input length for random/sonnet")
    d.add_argument("--output-len", type=_positive_int, metavar="N",
                   help="max output tokens for every request, overriding the dataset's")
    d.add_argument("--random-input-len", type=_prompt_len, default=1024, metavar="N", help="default 1024")
    d.add_argument("--random-output-len", type=_positive_int, default=128, metavar="N", help="default 128")
    d.add_argument("--random-range-ratio", type=_ratio, default=0.0, metavar="R",
                   help="lengths drawn from [N(1-R), N(1+R)] (default 0)")
    d.add_argument("--custom-output-len", type=_positive_int, default=256, metavar="N",
                   help="output length for custom lines without output_tokens (default 256)")
    d.add_argument("--sharegpt-output-len", type=_positive_int, metavar="N",
                   help="output length instead of the reply's length")
    d.add_argument("--sonnet-input-len", type=_prompt_len, default=550, metavar="N", help="default 550")
    d.add_argument("--sonnet-output-len", type=_positive_int, default=150, metavar="N", help="default 150")
    d.add_argument("--sonnet-prefix-len", type=_prefix_len, default=200, metavar="N", help="default 200")

    lo = p.add_argument_group("load")
    lo.add_argument("--request-rate", type=_rate, default=float("inf"), metavar="RPS",
                    help="requests per second (default inf: all at once)")
    lo.add_argument("--burstiness", type=_shape, default=1.0,
                    help="gamma shape of arrival gaps: 1 = Poisson (default), <1 burstier, >1 steadier")
    lo.add_argument("--max-concurrency", type=_concurrency, metavar="N", help="most requests in flight at once")
    lo.add_argument("--num-warmups", type=_warmups, default=0, metavar="N", help="warm-up requests, not measured")
    lo.add_argument("--ramp-up-strategy", choices=("linear", "exponential"),
                    help="ramp the rate from --ramp-up-start-rps to --ramp-up-end-rps over the requests")
    lo.add_argument("--ramp-up-start-rps", type=_positive_float, metavar="RPS")
    lo.add_argument("--ramp-up-end-rps", type=_positive_float, metavar="RPS")
    lo.add_argument("--duration", type=_positive_float, metavar="S",
                    help="stop sending new requests after S seconds (those in flight finish)")
    lo.add_argument("--seed", type=int, default=0, help="seed for sampling and arrivals (default 0)")
    lo.add_argument("--workers", type=_workers, default=1, metavar="N",
                    help="send from N worker processes, each with its own event loop, for more streams than one "
                         "loop times honestly (default 1: this process); with --ray-address, N Ray actors")
    lo.add_argument("--ray-address", metavar="ADDR",
                    help="run the workers as Ray actors on this existing cluster: HOST:PORT of its head, or auto "
                         "(needs pip install 'tokdeck[ray]')")
    lo.add_argument("--ray-resource", metavar="NAME",
                    help="with --ray-address: only on the nodes that carry this Ray resource")

    r = p.add_argument_group("request")
    r.add_argument("--ignore-eos", action="store_true", help="send ignore_eos (vLLM extension)")
    r.add_argument("--temperature", type=_temperature, help="sampling temperature (default: the server's)")

    o = p.add_argument_group("results")
    o.add_argument("--goodput", nargs="+", metavar="KEY:MS", help="SLOs, e.g. ttft:500 tpot:50 e2el:2000")
    o.add_argument("--percentile-metrics", default="ttft,tpot,itl",
                   help="metrics with statistics: ttft,tpot,itl,e2el (default ttft,tpot,itl)")
    o.add_argument("--metric-percentiles", default="99", help="percentiles, e.g. 50,90,99,99.9 (default 99)")
    o.add_argument("--save-result", action="store_true", help="write the result as JSON (vLLM's keys)")
    o.add_argument("--save-detailed", action="store_true", help="add per-request arrays to the JSON")
    o.add_argument("--result-dir", metavar="DIR", help="folder for the JSON (default: current folder)")
    o.add_argument("--result-filename", metavar="NAME", help="file name (default vLLM-style)")
    o.add_argument("--label", help="label in the result and default file name (default: the backend)")
    o.add_argument("--csv", metavar="PATH", help="write one CSV row per request")
    o.add_argument("--disable-tqdm", action="store_true", help="no progress line")


# ---------------------------------------------------------------------- helpers
def validate(args) -> None:
    from ..errors import TokdeckError

    if args.dataset_name in ("custom", "sharegpt") and not args.dataset_path:
        raise TokdeckError(f"--dataset-name {args.dataset_name} needs --dataset-path FILE")
    if args.dataset_name in ("random", "sonnet") and args.dataset_path:
        raise TokdeckError(f"--dataset-name {args.dataset_name} takes no --dataset-path")
    if args.ramp_up_strategy:
        if args.request_rate != float("inf"):
            raise TokdeckError("--ramp-up-strategy sets the rate itself: drop --request-rate")
        if args.ramp_up_start_rps is None or args.ramp_up_end_rps is None:
            raise TokdeckError("--ramp-up-strategy needs --ramp-up-start-rps and --ramp-up-end-rps")
        if args.ramp_up_start_rps > args.ramp_up_end_rps:
            raise TokdeckError("--ramp-up-start-rps must not exceed --ramp-up-end-rps")
    elif args.ramp_up_start_rps is not None or args.ramp_up_end_rps is not None:
        raise TokdeckError("--ramp-up-start-rps/--ramp-up-end-rps need --ramp-up-strategy")
    if args.ray_resource is not None and args.ray_address is None:
        raise TokdeckError("--ray-resource needs --ray-address")
    if args.max_concurrency is not None and args.workers > args.max_concurrency:
        raise TokdeckError(f"--workers {args.workers} needs --max-concurrency of at least {args.workers}: the "
                           f"workers share the {args.max_concurrency} slot(s), one at least each")
    if args.save_detailed and not args.save_result:
        args.save_result = True
    for dest in ("profile", "base_url", "endpoint", "model", "tokenizer", "api_key_env", "ca_bundle", "dataset_path",
                 "result_dir", "result_filename", "label", "csv", "ray_address", "ray_resource"):
        value = getattr(args, dest, None)
        if value is not None and not value.strip():  # `--model "$MODEL"` with MODEL unset: say so, no default
            raise TokdeckError(f"--{dest.replace('_', '-')} must not be empty")
    if args.ca_bundle and args.insecure:
        raise TokdeckError("--ca-bundle and --insecure contradict each other")
    if args.base_url is not None:
        problem = base_url_problem(args.base_url)
        if problem:
            raise TokdeckError(f"--base-url {problem} (got {shown_url(args.base_url)!r})")
    if args.endpoint is not None and (not args.endpoint.strip() or re.search(r"[\s\x00-\x1f\x7f]", args.endpoint)):
        raise TokdeckError("--endpoint must be a path such as /v1/chat/completions, without spaces or control "
                           "characters")
    if args.api_key_env is not None and env_name_problem(args.api_key_env):
        raise TokdeckError(f"--api-key-env {env_name_problem(args.api_key_env)}, not {args.api_key_env!r}")
    parse_headers(args.header)


def apply_profile(args, say=lambda line: None) -> str | None:
    """Fill in ``args`` from the named config profile; returns the key stored in it, if any.

    The command line wins: base URL, model, --backend, --api-key-env, TLS options and --timeout
    (when changed from its default) keep their values; profile headers come before --header ones."""
    from ..config import load_config

    cfg = load_config()
    prof = cfg.profile(args.profile)
    for warning in cfg.warnings:
        say(f"warning: {warning}")
    if not args.base_url:
        args.base_url = prof.base_url or None
    if not getattr(args, "backend_given", False):
        args.backend = prof.backend
    if not args.model:
        args.model = prof.model
    if not args.api_key_env and prof.api_key_env:
        args.api_key_env = prof.api_key_env
    args.header = [f"{k}={v}" for k, v in prof.headers.items()] + list(args.header)
    if not args.insecure and not args.ca_bundle:
        args.insecure, args.ca_bundle = prof.insecure, prof.ca_bundle
    if args.timeout == 600.0:
        args.timeout = prof.timeout_s
    return prof.api_key


def parse_headers(items: list[str]) -> tuple[tuple[str, str], ...]:
    from ..errors import TokdeckError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise TokdeckError(f"--header {key or item!r}: expected KEY=VALUE")
        problem = header_name_problem(key) or header_value_problem(value)
        if problem:
            raise TokdeckError(f"--header {key!r}: {'the name' if header_name_problem(key) else 'the value'} "
                               f"{problem}")
        out.append((key, value))
    return tuple(out)


def _api_key(args) -> tuple[str | None, str]:
    """The key from --api-key-env, else $OPENAI_API_KEY, and where it came from."""
    import os

    from ..errors import TokdeckError

    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise TokdeckError(f"--api-key-env: environment variable {args.api_key_env} is not set or empty")
        return key, f"${args.api_key_env}"
    return os.environ.get("OPENAI_API_KEY") or None, "$OPENAI_API_KEY"


def auth_headers(base_url: str, headers, api_key: str | None, key_source: str) -> dict[str, str]:
    """The headers of ``GET /v1/models`` (extra headers, then the key as a bearer token), after the
    checks every request needs: a key that fits in a header, and no second ``Authorization``
    beside credentials in the URL (aiohttp sends ``user:password@`` as Basic authentication and
    refuses both). TokdeckError (one line, never the key) otherwise."""
    from ..errors import TokdeckError

    out = dict(headers)
    given = any(k.lower() == "authorization" for k in out)
    if api_key is not None:
        problem = api_key_problem(api_key)
        if problem:
            raise TokdeckError(f"the API key from {key_source} {problem}")
    if has_credentials(base_url):
        other = f"an API key ({key_source})" if api_key else "an Authorization header" if given else None
        if other:
            raise TokdeckError(f"{shown_url(base_url)}: credentials in the URL (user:password@) and {other} would "
                               "both be the Authorization header: keep one")
    if api_key and not given:  # an Authorization header given wins, as in runs
        out["Authorization"] = f"Bearer {api_key}"
    return out


def _tokenizer(args, model: str, reg, fallback: str | None):
    """(Tokenizer, how it was chosen) for local counts: --tokenizer, the model, the sim's, estimate."""
    from ..errors import TokenizerError
    from ..tokenizers import resolve_model, resolve_tokenizer_id

    if args.tokenizer:
        return reg.get(resolve_tokenizer_id(args.tokenizer, reg)), "--tokenizer"
    try:
        res = resolve_model(model, reg)
        return reg.get(res.tokenizer_id), f"resolved from the model ({res.via})"
    except TokenizerError:
        pass
    if fallback and fallback in reg.ids():
        return reg.get(fallback), "the simulator's"
    return reg.get("estimate"), "no tokenizer known for the model: estimate"


async def _preflight(base_url: str, headers: dict, timeout: float, insecure: bool, ca_bundle: str | None):
    """GET /v1/models: (status, the ModelList or None, why there is none). TokdeckError when unreachable."""
    from .models import fetch_models, parse_models

    status, body = await fetch_models(base_url, headers, timeout, insecure, ca_bundle, url_label="--base-url ")
    if status != 200:
        return status, None, f"HTTP {status}"
    try:
        return status, parse_models(body), None
    except ValueError as exc:
        return status, None, f"not a model list: {exc}"


def _load_requests(args, tokenizer):
    from . import datasets as ds

    name = args.dataset_name
    if name == "random":
        return ds.random_requests(tokenizer, args.num_prompts, args.input_len or args.random_input_len,
                                  args.output_len or args.random_output_len, args.random_range_ratio, args.seed)
    if name == "sonnet":
        return ds.sonnet_requests(tokenizer, args.num_prompts, args.input_len or args.sonnet_input_len,
                                  args.output_len or args.sonnet_output_len, args.sonnet_prefix_len, args.seed)
    if name == "sharegpt":
        return ds.load_sharegpt(args.dataset_path, tokenizer, args.num_prompts, args.seed,
                                args.output_len or args.sharegpt_output_len)
    return ds.load_custom(args.dataset_path, tokenizer, args.num_prompts, args.seed, args.output_len,
                          args.custom_output_len)


def result_path(args, result) -> "Path":
    """--result-dir/--result-filename, else vLLM's file name; the model's name is the server's
    (outside input), so it and the label are cut down to characters safe in one file name."""
    from pathlib import Path

    if args.result_filename:
        name = args.result_filename
    else:
        label = _file_part(args.label or args.backend)
        conc = f"-concurrency{args.max_concurrency}" if args.max_concurrency is not None else ""
        model = _file_part(result.setup["model_id"].split("/")[-1])
        date = result.setup["date"]
        if args.ramp_up_strategy:
            name = (f"{label}-ramp-up-{args.ramp_up_strategy}-{args.ramp_up_start_rps:g}qps-"
                    f"{args.ramp_up_end_rps:g}qps{conc}-{model}-{date}.json")
        else:
            name = f"{label}-{args.request_rate}qps{conc}-{model}-{date}.json"
    return Path(args.result_dir or ".") / name


def _file_part(text: str) -> str:
    part = re.sub(r"[\x00-\x1f\x7f/\\]", "_", text)[:100]
    return "_" if part in ("", ".", "..") else part


# ---------------------------------------------------------------------- run
class Prepared:
    """A run ready to start: its spec, prompts and counter, and the simulator it started (if any)."""

    def __init__(self, spec, requests, counter, sim) -> None:
        self.spec, self.requests, self.counter, self.sim = spec, requests, counter, sim


def prepare(args, *, registry=None, api_key: str | None = None, sim_config=None, say=None) -> Prepared:
    """Everything before the run: checks, the simulator (no --base-url), GET /v1/models, the
    tokenizer, the prompts and the spec. ``api_key`` beats --api-key-env; ``say`` gets the
    informational lines. The caller stops ``prepared.sim`` when done with it."""
    import asyncio

    from . import metrics as m
    from .engine import BenchSpec, TokenCounter, redact_url
    from ..errors import TokdeckError
    from ..tokenizers import default_registry

    say = say or (lambda line: None)
    profile_key = apply_profile(args, say) if getattr(args, "profile", None) else None
    validate(args)
    try:
        percentile_metrics = m.parse_metric_names(args.percentile_metrics)
        percentiles = m.parse_percentiles(args.metric_percentiles)
        goodput = m.parse_goodput(args.goodput) if args.goodput else None
    except ValueError as exc:
        raise TokdeckError(str(exc)) from None
    headers = parse_headers(args.header)
    if api_key or (profile_key and not args.api_key_env):
        api_key, key_source = api_key or profile_key, "the profile's stored key"
    else:
        api_key, key_source = _api_key(args)

    sim = None
    sim_tokenizer = None
    base_url = args.base_url
    if not base_url:
        from .sim import SimConfig, ThreadedSimulator

        cfg = sim_config or SimConfig()
        sim = ThreadedSimulator(cfg)
        base_url = sim.start()
        sim_tokenizer = cfg.tokenizer
        say(f"no --base-url given: using the built-in simulator at {base_url} "
            f"(model {cfg.model}, simulated TTFT {cfg.ttft_ms:g} ms, ITL {cfg.itl_ms:g} ms; not a real server)")
    try:
        pre_headers = auth_headers(base_url, headers, api_key, key_source)
        status, models, problem = asyncio.run(_preflight(base_url, pre_headers, args.connect_timeout,
                                                         args.insecure, args.ca_bundle))
        sim_tokenizer = sim_tokenizer or (models.sim_tokenizer if models else None)
        if status in (401, 403):
            say(f"warning: {redact_url(base_url)} answered HTTP {status} to GET /v1/models: "
                "check the API key (--api-key-env / OPENAI_API_KEY)")
        model = args.model or (models.ids[0] if models and models.ids else None)
        if not model:
            raise TokdeckError(f"no --model given and {redact_url(base_url)}/v1/models gave none "
                               f"({problem or 'it lists no model'}): pass --model")
        reg = registry or default_registry()
        tokenizer, how = _tokenizer(args, model, reg, sim_tokenizer)
        counter = TokenCounter(tokenizer)
        requests = _load_requests(args, tokenizer)
        ramp = ((args.ramp_up_strategy, args.ramp_up_start_rps, args.ramp_up_end_rps)
                if args.ramp_up_strategy else None)
        spec = BenchSpec(
            base_url=base_url, model=model, backend=args.backend, endpoint=args.endpoint,
            request_rate=args.request_rate, burstiness=args.burstiness, max_concurrency=args.max_concurrency,
            num_warmups=args.num_warmups, duration=args.duration, seed=args.seed, ramp_up=ramp,
            stream=not args.no_stream, ignore_eos=args.ignore_eos or args.dataset_name == "random",
            temperature=args.temperature, headers=headers, api_key=api_key, insecure=args.insecure,
            ca_bundle=args.ca_bundle, connect_timeout=args.connect_timeout, read_timeout=args.timeout,
            keep_texts=args.save_detailed, percentile_metrics=percentile_metrics, percentiles=percentiles,
            goodput=goodput, label=args.label or args.backend, dataset_name=args.dataset_name,
            tokenizer_id=tokenizer.id)
    except BaseException:
        if sim is not None:
            sim.stop()
        raise
    rate = "inf" if args.request_rate == float("inf") else f"{args.request_rate:g}"
    if ramp:
        rate = f"ramp-up {ramp[0]} {ramp[1]:g} -> {ramp[2]:g} req/s"
    say(f"{len(requests)} requests to {redact_url(spec.url)} (model {model}); "
        f"rate {rate}, burstiness {args.burstiness:g}, max concurrency {args.max_concurrency or 'none'}; "
        f"local counts with {tokenizer.id} ({how})")
    return Prepared(spec, requests, counter, sim)


def save_result(args, result) -> "Path":
    """Write the result JSON (vLLM's keys; detailed with --save-detailed) atomically; its path."""
    import orjson

    from ..errors import TokdeckError
    from ..paths import atomic_write_bytes

    path = result_path(args, result)
    try:
        atomic_write_bytes(path, orjson.dumps(result.to_vllm_json(detailed=args.save_detailed),
                                              option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise TokdeckError(f"{path}: cannot write the result: {exc.strerror or exc}") from None
    return path


def save_csv(path: str | Path, result) -> None:
    """Write one CSV row per request (``--csv``) atomically."""
    from pathlib import Path

    from ..errors import TokdeckError
    from ..paths import atomic_write_text

    try:
        atomic_write_text(Path(path), result.to_csv())
    except OSError as exc:
        raise TokdeckError(f"{path}: cannot write the CSV: {exc.strerror or exc}") from None
