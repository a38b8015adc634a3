"""Everything before a run, and the files after it.

:func:`prepare` turns :class:`~.options.RunOptions` into a ready run (a frozen :class:`Prepared`):
the profile applied, checks, the simulator when no base URL is given, GET /v1/models, the local
tokenizer, the prompts and the :class:`BenchSpec`. :func:`save_result` and :func:`save_csv` write
the result where the options say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..endpoint import ApiKey, api_key_problem, has_credentials, resolve_api_key, shown_url
from .options import RunOptions, apply_profile, parse_headers, validate

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from ..config import Profile
    from ..tokenizers import Registry
    from .client import BenchRequest
    from .engine import BenchSpec, TokenCounter
    from .results import BenchResult
    from .sim import SimConfig
    from .simproc import SimProcess


def auth_headers(base_url: str, headers: Sequence[tuple[str, str]], key: ApiKey) -> dict[str, str]:
    """The headers of ``GET /v1/models`` (extra headers, then the key as a bearer token), after the
    checks every request needs: a named key variable that is set, a key that fits in a header, and
    no second ``Authorization`` beside credentials in the URL (aiohttp sends ``user:password@`` as
    Basic authentication and refuses both). TokdeckError (one line, never the key) otherwise."""
    from ..errors import TokdeckError

    api_key = key.required()
    out = dict(headers)
    given = any(k.lower() == "authorization" for k in out)
    if api_key is not None:
        problem = api_key_problem(api_key)
        if problem:
            raise TokdeckError(f"the API key from {key.source} {problem}")
    if has_credentials(base_url):
        other = f"an API key ({key.source})" if api_key else "an Authorization header" if given else None
        if other:
            raise TokdeckError(f"{shown_url(base_url)}: credentials in the URL (user:password@) and {other} would "
                               "both be the Authorization header: keep one")
    if api_key and not given:  # an Authorization header given wins, as in runs
        out["Authorization"] = f"Bearer {api_key}"
    return out


def _tokenizer(options: RunOptions, model: str, reg: Registry, fallback: str | None) -> tuple[Any, str]:
    """(Tokenizer, how it was chosen) for local counts: --tokenizer, the model, the sim's, estimate."""
    from ..errors import TokenizerError
    from ..tokenizers import resolve_model, resolve_tokenizer_id

    if options.tokenizer:
        return reg.get(resolve_tokenizer_id(options.tokenizer, reg)), "--tokenizer"
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


def _load_requests(options: RunOptions, tokenizer: Any) -> list[BenchRequest]:
    from . import datasets as ds

    o = options
    if o.dataset_name == "random":
        return ds.random_requests(tokenizer, o.num_prompts, o.input_len or o.random_input_len,
                                  o.output_len or o.random_output_len, o.random_range_ratio, o.seed)
    if o.dataset_name == "sonnet":
        return ds.sonnet_requests(tokenizer, o.num_prompts, o.input_len or o.sonnet_input_len,
                                  o.output_len or o.sonnet_output_len, o.sonnet_prefix_len, o.seed)
    assert o.dataset_path is not None  # validate() requires it for the file datasets
    if o.dataset_name == "sharegpt":
        return ds.load_sharegpt(o.dataset_path, tokenizer, o.num_prompts, o.seed,
                                o.output_len or o.sharegpt_output_len)
    return ds.load_custom(o.dataset_path, tokenizer, o.num_prompts, o.seed, o.output_len, o.custom_output_len)


def result_path(options: RunOptions, result: BenchResult) -> Path:
    """--result-dir/--result-filename, else vLLM's file name; the model's name is the server's
    (outside input), so it and the label are cut down to characters safe in one file name."""
    from pathlib import Path

    o = options
    if o.result_filename:
        name = o.result_filename
    else:
        label = file_part(o.label or o.backend)
        conc = f"-concurrency{o.max_concurrency}" if o.max_concurrency is not None else ""
        model = file_part(result.setup["model_id"].split("/")[-1])
        date = result.setup["date"]
        if o.ramp_up_strategy:
            name = (f"{label}-ramp-up-{o.ramp_up_strategy}-{o.ramp_up_start_rps:g}qps-"
                    f"{o.ramp_up_end_rps:g}qps{conc}-{model}-{date}.json")
        else:
            name = f"{label}-{o.request_rate}qps{conc}-{model}-{date}.json"
    return Path(o.result_dir or ".") / name


def file_part(text: str) -> str:
    """``text`` made safe as one part of a file name."""
    part = re.sub(r"[\x00-\x1f\x7f/\\]", "_", text)[:100]
    return "_" if part in ("", ".", "..") else part


# ---------------------------------------------------------------------- run
@dataclass(frozen=True)
class Prepared:
    """A run ready to start. The caller stops ``sim`` (the simulator it started, if any) when done."""

    options: RunOptions  # with the profile applied: what the run and its files follow
    spec: BenchSpec
    requests: Sequence[BenchRequest]
    counter: TokenCounter
    sim: SimProcess | None
    description: str  # "N requests to URL (model M); rate ...", the last line said


def _config_profile(name: str, say: Callable[[str], None]) -> Profile:
    from ..config import load_config

    cfg = load_config()
    profile = cfg.profile(name)
    for warning in cfg.warnings:
        say(f"warning: {warning}")
    return profile


def prepare(options: RunOptions, *, profile: Profile | None = None, registry: Registry | None = None,
            sim_config: SimConfig | None = None, say: Callable[[str], None] | None = None) -> Prepared:
    """Everything before the run: the profile (``profile``, else the config's ``options.profile``)
    completes the options, then checks, the simulator (no base URL), GET /v1/models, the
    tokenizer, the prompts and the spec. ``say`` gets the informational lines. ``options`` is
    left as it is."""
    import asyncio
    import math

    from ..errors import TokdeckError
    from ..tokenizers import default_registry
    from .engine import BenchSpec, TokenCounter
    from .redact import redact_url

    say = say or (lambda line: None)
    if profile is None and options.profile:
        profile = _config_profile(options.profile, say)
    if profile is not None:
        options = apply_profile(options, profile)
    validate(options)
    o = options
    headers = parse_headers(o.header)
    key = resolve_api_key(o.api_key_env, profile.api_key if profile is not None else None)
    key.required()  # a named variable that is unset: refused before a simulator starts

    sim = None
    sim_tokenizer = None
    base_url = o.base_url
    if not base_url:
        from .sim import SimConfig
        from .simproc import SimProcess

        cfg = sim_config or SimConfig()
        sim = SimProcess(cfg)
        base_url = sim.start()
        sim_tokenizer = cfg.tokenizer
        say(f"no --base-url given: using the built-in simulator at {base_url} (its own process; "
            f"model {cfg.model}, simulated TTFT {cfg.ttft_ms:g} ms, ITL {cfg.itl_ms:g} ms; not a real server)")
    try:
        pre_headers = auth_headers(base_url, headers, key)
        status, models, problem = asyncio.run(_preflight(base_url, pre_headers, o.connect_timeout, o.insecure,
                                                         o.ca_bundle))
        sim_tokenizer = sim_tokenizer or (models.sim_tokenizer if models else None)
        if status in (401, 403):
            say(f"warning: {redact_url(base_url)} answered HTTP {status} to GET /v1/models: "
                "check the API key (--api-key-env / OPENAI_API_KEY)")
        model = o.model or (models.ids[0] if models and models.ids else None)
        if not model:
            raise TokdeckError(f"no --model given and {redact_url(base_url)}/v1/models gave none "
                               f"({problem or 'it lists no model'}): pass --model")
        reg = registry or default_registry()
        tokenizer, how = _tokenizer(o, model, reg, sim_tokenizer)
        counter = TokenCounter(tokenizer)
        requests = _load_requests(o, tokenizer)
        ramp = None
        if o.ramp_up_strategy and o.ramp_up_start_rps is not None and o.ramp_up_end_rps is not None:
            ramp = (o.ramp_up_strategy, o.ramp_up_start_rps, o.ramp_up_end_rps)
        spec = BenchSpec(
            base_url=base_url, model=model, backend=o.backend, endpoint=o.endpoint,
            request_rate=o.request_rate, burstiness=o.burstiness, max_concurrency=o.max_concurrency,
            num_warmups=o.num_warmups, duration=o.duration, seed=o.seed, ramp_up=ramp,
            stream=not o.no_stream, ignore_eos=o.ignore_eos or o.dataset_name == "random",
            temperature=o.temperature, headers=headers, api_key=key.value, insecure=o.insecure,
            ca_bundle=o.ca_bundle, connect_timeout=o.connect_timeout, read_timeout=o.timeout,
            keep_texts=o.save_detailed, percentile_metrics=o.percentile_metrics, percentiles=o.metric_percentiles,
            goodput=dict(o.goodput) or None, label=o.label or o.backend, dataset_name=o.dataset_name,
            tokenizer_id=tokenizer.id)
    except BaseException:
        if sim is not None:
            sim.stop()
        raise
    rate = "inf" if o.request_rate == math.inf else f"{o.request_rate:g}"
    if ramp:
        rate = f"ramp-up {ramp[0]} {ramp[1]:g} -> {ramp[2]:g} req/s"
    description = (f"{len(requests)} requests to {redact_url(spec.url)} (model {model}); "
                   f"rate {rate}, burstiness {o.burstiness:g}, max concurrency {o.max_concurrency or 'none'}; "
                   f"local counts with {tokenizer.id} ({how})")
    say(description)
    return Prepared(options=o, spec=spec, requests=requests, counter=counter, sim=sim, description=description)


def save_result(options: RunOptions, result: BenchResult) -> Path:
    """Write the result JSON (vLLM's keys; detailed with --save-detailed) atomically; its path."""
    path = result_path(options, result)
    write_json(path, result.to_vllm_json(detailed=options.save_detailed), "the result")
    return path


def write_json(path: Path, data: object, what: str) -> None:
    """Write ``data`` as indented JSON atomically; TokdeckError (one line) naming ``what``."""
    import orjson

    from ..errors import TokdeckError
    from ..paths import atomic_write_bytes

    try:
        atomic_write_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise TokdeckError(f"{path}: cannot write {what}: {exc.strerror or exc}") from None


def write_csv(path: str | Path, text: str) -> None:
    """Write a CSV text atomically; TokdeckError (one line)."""
    from pathlib import Path

    from ..errors import TokdeckError
    from ..paths import atomic_write_text

    try:
        atomic_write_text(Path(path), text)
    except OSError as exc:
        raise TokdeckError(f"{path}: cannot write the CSV: {exc.strerror or exc}") from None


def save_csv(path: str | Path, result: BenchResult) -> None:
    """Write one CSV row per request (``--csv``) atomically."""
    write_csv(path, result.to_csv())
