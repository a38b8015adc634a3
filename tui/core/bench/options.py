"""The run options of a benchmark: each declared once, as a field of :class:`RunOptions`.

A declaration (:func:`option`) gives the option's type (the annotation), default, parser (text to
value; ValueError says what is wrong), help text and argparse group, and, for the Bench pane's
Setup form, a label and a hint (what an empty field means). From it come:

- the flags of `tokdeck bench` and `tokdeck ui` (:func:`add_run_arguments`, named as vLLM's
  ``bench serve`` names them: ``--num-prompts`` for ``num_prompts``), read back with
  :func:`from_namespace`;
- the Setup form's rows (:data:`FORM_ROWS`, in declaration order): a Select for an option with
  choices, an Input for the others, its text checked by the option's parser;
- the frozen :class:`RunOptions` itself. ``given`` names the options the user set, on the command
  line or in the form: a config profile (:func:`apply_profile`) fills in only the others.

Checks across options, and of text options that would be empty, are :func:`validate`'s.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Callable

from ..endpoint import BACKENDS, header_name_problem, header_value_problem
from ..numbers import SEED, NumberRule, argparse_type
from .capacity import DEFAULT_SLO_PERCENTILE, SweepSpec, parse_sweep
from .metrics import DEFAULT_PERCENTILE_METRICS, DEFAULT_PERCENTILES, parse_goodput, parse_metric_names, \
    parse_percentiles
from .schedule import MAX_WORKERS

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Profile

#: vLLM's dataset names; the two read from --dataset-path first
DATASETS = ("random", "custom", "sharegpt", "sonnet")
FILE_DATASETS = ("custom", "sharegpt")
RAMP_UP_STRATEGIES = ("linear", "exponential")

#: bounds that keep a typo from exhausting memory before anything is sent: every request, warm-up
#: and concurrency slot costs memory up front, and prompts are made locally token by token
MAX_REQUESTS = 1_000_000
MAX_WARMUPS = 10_000
MAX_CONCURRENCY = 100_000
MAX_PROMPT_TOKENS = 1_048_576
DEFAULT_TIMEOUT_S = 600.0

_positive_int = NumberRule(int, lo=1).parse
_requests = NumberRule(int, lo=1, hi=MAX_REQUESTS).parse
_concurrency = NumberRule(int, lo=1, hi=MAX_CONCURRENCY).parse
_warmups = NumberRule(int, lo=0, hi=MAX_WARMUPS).parse
_prompt_len = NumberRule(int, lo=1, hi=MAX_PROMPT_TOKENS).parse
_prefix_len = NumberRule(int, lo=0, hi=MAX_PROMPT_TOKENS).parse
_positive_float = NumberRule(float, lo=0, lo_open=True).parse
_shape = NumberRule(float, lo=0, lo_open=True, inf_ok=True, need="> 0 (or inf: even gaps)").parse
_rate = NumberRule(float, lo=0, lo_open=True, inf_ok=True).parse
_ratio = NumberRule(float, lo=0, hi=1, hi_open=True).parse
_temperature = NumberRule(float, lo=0).parse
_workers = NumberRule(int, lo=1, hi=MAX_WORKERS).parse
_slo_percentile = NumberRule(float, lo=0, hi=100, lo_open=True).parse


def text(value: str) -> str:
    """The parser of a text option: the text as typed (empty ones are refused by ``validate``)."""
    return value


def _header(item: str) -> tuple[str, ...]:
    return (item,)  # KEY=VALUE, checked by parse_headers (its messages name the header)


def _goodput(item: str) -> tuple[tuple[str, float], ...]:
    return tuple(parse_goodput([item]).items())


@dataclass(frozen=True)
class OptionSpec:
    """One run option: how it is typed, shown and explained (see the module's docstring)."""

    name: str
    default: Any
    #: text -> value (ValueError with the reason); None for a switch (a flag without a value)
    parse: Callable[[str], Any] | None
    help: str | None
    group: str | None = None
    metavar: str | None = None
    #: the values allowed (argparse's choices); () when the pane fills them (profiles, models)
    choices: tuple[str, ...] | None = None
    #: several values: each text gives a tuple of them, and the option holds them all
    many: bool = False
    #: a row of the Setup form has this label (None: command line only)
    label: str | None = None
    #: in the form: what an empty field means (a Select may be left blank only when there is one)
    hint: str = ""
    #: in the form: on the row of the option declared before it
    beside: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def words(self) -> str:
        """How the form names the option in a message: "request rate"."""
        return self.name.replace("_", " ")

    def from_text(self, value: str) -> Any:
        """The value of a form field's text: parsed, or the default when empty and one may leave
        it empty (ValueError naming the option otherwise)."""
        value = value.strip()
        if not value:
            if self.default is None or self.many:
                return self.default
            raise ValueError(f"{self.words}: a value is needed")
        assert self.parse is not None  # the form has no switch
        try:
            return self.parse(value)
        except ValueError as exc:
            raise ValueError(f"{self.words}: {exc}") from None


def option(default: Any, parse: Callable[[str], Any] | None, help: str | None, **spec: Any) -> Any:
    """A field of RunOptions declaring a run option (keywords: those of OptionSpec)."""
    return field(default=default, metadata={"option": OptionSpec("", default, parse, help, **spec)})


_E, _D, _L, _S, _R, _O = "endpoint", "dataset", "load", "sweep", "request", "results"


@dataclass(frozen=True)
class RunOptions:
    """Everything a benchmark run is asked to be, typed (the flags of `tokdeck bench`)."""

    profile: str | None = option(
        None, text, "an endpoint from [[profiles]] in the config: its base URL, backend, model, API key, "
                    "headers and TLS settings fill in what the command line leaves out (in the dashboard: the "
                    "Bench pane opens with it selected)", metavar="NAME", choices=(), label="Profile")
    backend: str = option("openai-chat", text, "openai-chat: /v1/chat/completions (default); openai: /v1/completions",
                          group=_E, choices=BACKENDS)
    base_url: str | None = option(None, text, "server base URL, e.g. http://gpu1:8000 (a trailing /v1 is fine); "
                                              "omitted: the built-in simulator", group=_E, metavar="URL")
    endpoint: str | None = option(None, text, "API path (default per backend)", group=_E, metavar="PATH")
    model: str | None = option(None, text, "model name to request (default: the first of GET /v1/models)", group=_E,
                               choices=(), label="Model", hint="the server's first model")
    tokenizer: str | None = option(
        None, text, "tokenizer id or model name for local token counts (default: resolved from --model, else the "
                    "estimate)", group=_E, metavar="ID", label="Tokenizer",
        hint="empty: resolved from the model name (local counts)")
    api_key_env: str | None = option(
        None, text, "environment variable holding the API key (default OPENAI_API_KEY); never printed or saved",
        group=_E, metavar="VAR")
    header: tuple[str, ...] = option((), _header, "extra HTTP header (repeatable)", group=_E, metavar="KEY=VALUE",
                                     many=True)
    insecure: bool = option(False, None, "do not verify TLS certificates", group=_E)
    ca_bundle: str | None = option(None, text, "CA certificates (PEM) to verify TLS with", group=_E, metavar="FILE")
    timeout: float = option(DEFAULT_TIMEOUT_S, _positive_float,
                            "read timeout: longest silence within a response (default 600 s)", group=_E, metavar="S")
    connect_timeout: float = option(10.0, _positive_float, "connect timeout (default 10 s)", group=_E, metavar="S")
    no_stream: bool = option(False, None, "non-streaming requests (TTFT = E2EL, no ITL/TPOT)", group=_E)
    metrics_url: str | None = option(
        None, text, "the server's Prometheus metrics, scraped about once a second during the run (default: "
                    "/metrics at the base URL's root)", group=_E, metavar="URL")
    no_server_metrics: bool = option(False, None, "do not scrape the server's metrics", group=_E)

    dataset_name: str = option(
        "random", text, "random (default), custom (JSONL: prompt/output_tokens, messages, or message arrays), "
                        "sharegpt, sonnet (bundled text)", group=_D, choices=DATASETS, label="Dataset")
    dataset_path: str | None = option(None, text, "the file for custom and sharegpt", group=_D, metavar="FILE",
                                      hint="JSONL file (custom, sharegpt)", beside=True)
    num_prompts: int = option(1000, _requests, f"number of requests (default 1000, at most {MAX_REQUESTS:,})",
                              group=_D, metavar="N", label="Prompts", hint="number of requests")
    input_len: int | None = option(None, _prompt_len, "input length for random/sonnet", group=_D, metavar="N")
    output_len: int | None = option(None, _positive_int, "max output tokens for every request, overriding the "
                                                         "dataset's", group=_D, metavar="N", label="Output length",
                                    hint="empty: the dataset's")
    random_input_len: int = option(1024, _prompt_len, "default 1024", group=_D, metavar="N")
    random_output_len: int = option(128, _positive_int, "default 128", group=_D, metavar="N")
    random_range_ratio: float = option(0.0, _ratio, "lengths drawn from [N(1-R), N(1+R)] (default 0)", group=_D,
                                       metavar="R")
    custom_output_len: int = option(256, _positive_int, "output length for custom lines without output_tokens "
                                                        "(default 256)", group=_D, metavar="N")
    sharegpt_output_len: int | None = option(None, _positive_int, "output length instead of the reply's length",
                                             group=_D, metavar="N")
    sonnet_input_len: int = option(550, _prompt_len, "default 550", group=_D, metavar="N")
    sonnet_output_len: int = option(150, _positive_int, "default 150", group=_D, metavar="N")
    sonnet_prefix_len: int = option(200, _prefix_len, "default 200", group=_D, metavar="N")

    request_rate: float = option(math.inf, _rate, "requests per second (default inf: all at once)", group=_L,
                                 metavar="RPS", label="Request rate", hint="requests/s, or inf")
    burstiness: float = option(1.0, _shape, "gamma shape of arrival gaps: 1 = Poisson (default), <1 burstier, "
                                            ">1 steadier", group=_L, label="Burstiness", hint="1 = Poisson")
    max_concurrency: int | None = option(None, _concurrency, "most requests in flight at once", group=_L,
                                         metavar="N", label="Max concurrency", hint="empty: no limit")
    num_warmups: int = option(0, _warmups, "warm-up requests, not measured", group=_L, metavar="N")
    ramp_up_strategy: str | None = option(
        None, text, "ramp the rate from --ramp-up-start-rps to --ramp-up-end-rps over the requests", group=_L,
        choices=RAMP_UP_STRATEGIES)
    ramp_up_start_rps: float | None = option(None, _positive_float, None, group=_L, metavar="RPS")
    ramp_up_end_rps: float | None = option(None, _positive_float, None, group=_L, metavar="RPS")
    duration: float | None = option(None, _positive_float, "stop sending new requests after S seconds (those in "
                                                           "flight finish)", group=_L, metavar="S")
    seed: int = option(0, SEED.parse, "seed for sampling and arrivals (default 0)", group=_L, label="Seed")
    workers: int = option(
        1, _workers, "send from N worker processes, each with its own event loop, for more streams than one loop "
                     "times honestly (default 1: this process); with --ray-address, N Ray actors", group=_L,
        metavar="N", label="Workers", hint="1: this process")
    ray_address: str | None = option(
        None, text, "run the workers as Ray actors on this existing cluster: HOST:PORT of its head, or auto "
                    "(needs pip install 'tokdeck[ray]')", group=_L, metavar="ADDR")
    ray_resource: str | None = option(None, text, "with --ray-address: only on the nodes that carry this Ray "
                                                  "resource", group=_L, metavar="NAME")

    sweep: SweepSpec | None = option(
        None, parse_sweep, "a run per step at rising load, judged against the --goodput SLOs: concurrency=1,2,4,... "
                           "(closed loop), rate=1,2,4,... (req/s, open loop) or auto (synchronous, throughput, "
                           "rates between, bisection near the knee)", group=_S, metavar="SPEC", label="Sweep",
        hint="empty: one run; auto, concurrency=1,2,4 or rate=1,2,4")
    step_duration: float | None = option(None, _positive_float, "each step's length (default 30 s)", group=_S,
                                         metavar="S", label="Step seconds", hint="default 30")
    step_requests: int | None = option(None, _requests, "each step's requests, instead of --step-duration", group=_S,
                                       metavar="N", hint="or requests per step", beside=True)
    slo_percentile: float = option(DEFAULT_SLO_PERCENTILE, _slo_percentile,
                                   "the percentile the SLOs hold at (default 99)", group=_S, metavar="P",
                                   label="SLO percentile")

    ignore_eos: bool = option(False, None, "send ignore_eos (vLLM extension)", group=_R)
    temperature: float | None = option(None, _temperature, "sampling temperature (default: the server's)", group=_R)

    goodput: tuple[tuple[str, float], ...] = option(
        (), _goodput, "SLOs, e.g. ttft:500 tpot:50 e2el:2000", group=_O, metavar="KEY:MS", many=True,
        label="Goodput SLOs", hint="e.g. ttft:500 tpot:50")
    percentile_metrics: tuple[str, ...] = option(
        DEFAULT_PERCENTILE_METRICS, parse_metric_names,
        "metrics with statistics: ttft,tpot,itl,e2el (default ttft,tpot,itl)", group=_O)
    metric_percentiles: tuple[float, ...] = option(
        DEFAULT_PERCENTILES, parse_percentiles, "percentiles, e.g. 50,90,99,99.9 (default 99)", group=_O)
    save_result: bool = option(False, None, "write the result as JSON (vLLM's keys)", group=_O)
    save_detailed: bool = option(False, None, "add per-request arrays to the JSON", group=_O)
    result_dir: str | None = option(None, text, "folder for the JSON (default: current folder)", group=_O,
                                    metavar="DIR")
    result_filename: str | None = option(None, text, "file name (default vLLM-style)", group=_O, metavar="NAME")
    label: str | None = option(None, text, "label in the result and default file name (default: the backend)",
                               group=_O)
    csv: str | None = option(None, text, "write one CSV row per request", group=_O, metavar="PATH")
    disable_tqdm: bool = option(False, None, "no progress line", group=_O)

    #: the options the user set (typed on the command line, or in the form): a profile keeps off them
    given: frozenset[str] = frozenset()

    @property
    def saves_result(self) -> bool:
        """--save-result, or --save-detailed (which implies it)."""
        return self.save_result or self.save_detailed

    def without(self, names: tuple[str, ...]) -> RunOptions:
        """These options back at their defaults, as if never given."""
        return replace(self, **{n: OPTION[n].default for n in names}, given=self.given - set(names))


#: every run option, in declaration (and --help) order
OPTIONS: tuple[OptionSpec, ...] = tuple(replace(f.metadata["option"], name=f.name) for f in fields(RunOptions)
                                        if "option" in f.metadata)
OPTION = {spec.name: spec for spec in OPTIONS}
#: the Setup form: rows of options (an option ``beside`` the one before it shares its row)
FORM_ROWS: tuple[tuple[OptionSpec, ...], ...] = tuple(
    (spec, *(o for o in OPTIONS[i + 1:i + 2] if o.beside))
    for i, spec in enumerate(OPTIONS) if spec.label is not None)
#: the Setup form's own defaults, for options the command line did not give: a first F5 against
#: the built-in simulator on a 2-core machine shows its configured timings and takes about 10 s
#: (the pane at load 5.5: mean TTFT 155-157 ms for 150 ms with 100 requests 16 at a time, 164 ms
#: with 200 at 32; vLLM's default, 1,000 at once, measures a late simulator: ~2.3 s)
FORM_DEFAULTS: dict[str, Any] = {"num_prompts": 100, "max_concurrency": 16}
#: what a profile sets: the Bench pane takes all of them from the profile selected
PROFILE_OPTIONS = ("base_url", "backend", "api_key_env", "header", "insecure", "ca_bundle", "timeout", "metrics_url")


def with_form_defaults(options: RunOptions) -> RunOptions:
    """``options`` with :data:`FORM_DEFAULTS` where the user gave no value."""
    return replace(options, **{name: value for name, value in FORM_DEFAULTS.items() if name not in options.given})


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Every run flag of `tokdeck bench` (also taken by `tokdeck ui`). Nothing is stored for a flag
    not typed, so :func:`from_namespace` knows which were."""
    groups: dict[str | None, Any] = {None: p}
    for spec in OPTIONS:
        if spec.group not in groups:
            groups[spec.group] = p.add_argument_group(spec.group)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": spec.help}
        if spec.parse is None:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = argparse_type(spec.parse)
            if spec.choices:
                kwargs["choices"] = spec.choices
            if spec.metavar:
                kwargs["metavar"] = spec.metavar
            if spec.many:
                kwargs.update(action="extend", nargs="+")
        groups[spec.group].add_argument(spec.flag, **kwargs)


def from_namespace(args: argparse.Namespace) -> RunOptions:
    """The run options of parsed flags (those of :func:`add_run_arguments`); the typed ones are given."""
    values: dict[str, Any] = {}
    for spec in OPTIONS:
        if hasattr(args, spec.name):
            value = getattr(args, spec.name)
            values[spec.name] = tuple(item for part in value for item in part) if spec.many else value
    return RunOptions(**values, given=frozenset(values))


def as_text(value: Any) -> str:
    """A value as a form field shows it: its parser reads it back the same."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        shown = repr(value)
        return shown[:-2] if shown.endswith(".0") else shown
    if isinstance(value, tuple):
        return " ".join(f"{item[0]}:{as_text(item[1])}" if isinstance(item, tuple) else as_text(item)
                        for item in value)
    return str(value)


def apply_profile(options: RunOptions, profile: Profile) -> RunOptions:
    """``options`` completed from a config profile: its base URL, backend, model, API-key variable,
    TLS settings, timeout and metrics URL where the user gave none; its headers before the user's."""
    def free(*names: str) -> bool:
        return not options.given.intersection(names)

    changes: dict[str, Any] = {"header": tuple(f"{k}={v}" for k, v in profile.headers.items()) + options.header}
    if free("base_url"):
        changes["base_url"] = profile.base_url
    if free("backend"):
        changes["backend"] = profile.backend
    if free("model") and profile.model is not None:
        changes["model"] = profile.model
    if free("api_key_env") and profile.api_key_env is not None:
        changes["api_key_env"] = profile.api_key_env
    if free("insecure", "ca_bundle"):
        changes.update(insecure=profile.insecure, ca_bundle=profile.ca_bundle)
    if free("timeout"):
        changes["timeout"] = profile.timeout_s
    if free("metrics_url", "no_server_metrics") and profile.metrics_url is not None:
        changes["metrics_url"] = profile.metrics_url
    return replace(options, **changes)


def validate(options: RunOptions) -> None:
    """What single values cannot say: combinations, empty texts, URL/path/header/variable rules.
    TokdeckError (one line, in terms of the flags) when the options cannot make a run."""
    import re

    from ..endpoint import base_url_problem, env_name_problem, metrics_url_problem, shown_url
    from ..errors import TokdeckError

    o = options
    if o.dataset_name in FILE_DATASETS and not o.dataset_path:
        raise TokdeckError(f"--dataset-name {o.dataset_name} needs --dataset-path FILE")
    if o.dataset_name not in FILE_DATASETS and o.dataset_path:
        raise TokdeckError(f"--dataset-name {o.dataset_name} takes no --dataset-path")
    _validate_sweep(o)
    if o.ramp_up_strategy:
        if o.request_rate != math.inf:
            raise TokdeckError("--ramp-up-strategy sets the rate itself: drop --request-rate")
        if o.ramp_up_start_rps is None or o.ramp_up_end_rps is None:
            raise TokdeckError("--ramp-up-strategy needs --ramp-up-start-rps and --ramp-up-end-rps")
        if o.ramp_up_start_rps > o.ramp_up_end_rps:
            raise TokdeckError("--ramp-up-start-rps must not exceed --ramp-up-end-rps")
    elif o.ramp_up_start_rps is not None or o.ramp_up_end_rps is not None:
        raise TokdeckError("--ramp-up-start-rps/--ramp-up-end-rps need --ramp-up-strategy")
    validate_workers(o)
    for spec in OPTIONS:
        value = getattr(o, spec.name)
        if spec.parse is text and value is not None and not value.strip():
            # `--model "$MODEL"` with MODEL unset: say so, no default
            raise TokdeckError(f"{spec.flag} must not be empty")
    if o.ca_bundle and o.insecure:
        raise TokdeckError("--ca-bundle and --insecure contradict each other")
    if o.base_url is not None:
        problem = base_url_problem(o.base_url)
        if problem:
            raise TokdeckError(f"--base-url {problem} (got {shown_url(o.base_url)!r})")
    if o.endpoint is not None and re.search(r"[\s\x00-\x1f\x7f]", o.endpoint):
        raise TokdeckError("--endpoint must be a path such as /v1/chat/completions, without spaces or control "
                           "characters")
    if o.api_key_env is not None and env_name_problem(o.api_key_env):
        raise TokdeckError(f"--api-key-env {env_name_problem(o.api_key_env)}, not {o.api_key_env!r}")
    if o.metrics_url is not None:
        problem = metrics_url_problem(o.metrics_url)
        if problem:
            raise TokdeckError(f"--metrics-url {problem} (got {shown_url(o.metrics_url)!r})")
        if o.no_server_metrics:
            raise TokdeckError("--metrics-url and --no-server-metrics contradict each other")
    parse_headers(o.header)


def validate_workers(options: RunOptions) -> None:
    """The checks of --workers, --ray-address and --ray-resource (before any worker starts):
    TokdeckError (one line)."""
    from ..errors import TokdeckError

    o = options
    if o.ray_resource is not None and o.ray_address is None:
        raise TokdeckError("--ray-resource needs --ray-address")
    if o.max_concurrency is not None and o.workers > o.max_concurrency:
        raise TokdeckError(f"--workers {o.workers} needs --max-concurrency of at least {o.workers}: the workers "
                           f"share the {o.max_concurrency} slot(s), one at least each")
def changed(o: RunOptions, name: str) -> bool:
    """``name`` was given with another value than its default (the Bench form gives every field)."""
    return name in o.given and getattr(o, name) != OPTION[name].default


#: the load options a sweep sets itself, step by step
SWEEP_SETS = ("request_rate", "duration", "ramp_up_strategy")


def _validate_sweep(o: RunOptions) -> None:
    from ..errors import TokdeckError

    if o.sweep is None:
        given = [n for n in ("step_duration", "step_requests", "slo_percentile") if changed(o, n)]
        if given:
            raise TokdeckError(f"{OPTION[given[0]].flag} needs --sweep")
        return
    taken = [n for n in SWEEP_SETS if changed(o, n)]
    if o.sweep.kind == "concurrency" and changed(o, "max_concurrency"):
        taken.append("max_concurrency")
    if o.sweep.kind == "rate" and changed(o, "max_concurrency"):
        raise TokdeckError("--sweep rate=... sends each rate without a concurrency limit: drop --max-concurrency "
                           "(with --sweep auto it sets the throughput step's streams)")
    if taken:
        raise TokdeckError(f"--sweep sets the load of each step: drop {OPTION[taken[0]].flag}")
    if o.step_duration is not None and o.step_requests is not None:
        raise TokdeckError("--step-duration and --step-requests contradict each other: give one")
    if o.ramp_up_start_rps is not None or o.ramp_up_end_rps is not None:
        raise TokdeckError("--sweep sets the load of each step: drop --ramp-up-start-rps/--ramp-up-end-rps")


def parse_headers(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """--header KEY=VALUE items as (name, value) pairs; TokdeckError naming the first bad one."""
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
