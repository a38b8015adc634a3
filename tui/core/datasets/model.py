"""The frozen dataclasses the dataset core returns (plain data: safe to hand to any thread or UI)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class FormatGuess:
    """What a file holds and how tokdeck knows it."""

    format: str  # one of FORMATS, or "unknown"
    container: str  # "jsonl" (one record per line) or "json-array" (one JSON array of records)
    how: str  # a sentence for people: "given with --format", "detected from 24/24 records: messages"
    matched: int = 0  # sampled records that looked like `format`
    sampled: int = 0  # records sampled for detection
    bom: bool = False
    crlf: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LineIssue:
    """One problem on one physical line (1-based). ``line`` is None for problems of the whole file."""

    line: int | None
    kind: str
    message: str
    column: int | None = None  # 1-based character column, when known
    severity: str = ERROR

    def to_dict(self) -> dict:
        out = {"line": self.line, "kind": self.kind, "message": self.message}
        if self.column is not None:
            out["column"] = self.column
        return out


@dataclass(frozen=True)
class ScanProgress:
    """A progress batch: yielded about every ``time_budget`` seconds while a pass runs."""

    phase: str  # "structure" or "tokens"
    bytes_done: int
    bytes_total: int
    records: int
    errors: int
    warnings: int
    elapsed: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.bytes_done / self.bytes_total) if self.bytes_total else 1.0


@dataclass(frozen=True)
class Histogram:
    """Counts per bin: bin i holds values in [edges[i], edges[i+1]) (the last bin includes its top)."""

    edges: tuple[int, ...]
    counts: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "counts": list(self.counts)}


@dataclass(frozen=True)
class Summary:
    """The distribution of a whole-number quantity (exact: built from a count per value)."""

    count: int
    total: int
    min: int
    mean: float
    p50: int
    p90: int
    p99: int
    max: int
    histogram: Histogram

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("count", "total", "min", "mean", "p50", "p90", "p99", "max")}
        d["mean"] = round(self.mean, 2)
        d["histogram"] = self.histogram.to_dict()
        return d


@dataclass(frozen=True)
class JointHistogram:
    """Records per (prompt length, answer length) cell; power-of-two bins: [0,1), [1,2), [2,4), [4,8)..."""

    prompt_edges: tuple[int, ...]
    answer_edges: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]  # counts[prompt_bin][answer_bin]

    def to_dict(self) -> dict:
        return {"prompt_edges": list(self.prompt_edges), "answer_edges": list(self.answer_edges),
                "counts": [list(r) for r in self.counts]}


@dataclass(frozen=True)
class RoleStats:
    """Messages (or fields, for formats without roles) of one role and their characters."""

    messages: int
    chars: int
    max_chars: int

    @property
    def mean_chars(self) -> float:
        return self.chars / self.messages if self.messages else 0.0

    def to_dict(self) -> dict:
        return {"messages": self.messages, "chars": self.chars, "max_chars": self.max_chars,
                "mean_chars": round(self.mean_chars, 1)}


@dataclass(frozen=True)
class DatasetStats:
    lines: int  # physical lines (JSONL) or lines of the array file
    bytes: int
    records: int
    valid: int
    invalid: int
    blank_lines: int
    roles: Mapping[str, RoleStats] = field(default_factory=dict)
    turns: Summary | None = None  # messages per valid record (chat formats)
    output_tokens: Summary | None = None  # declared `output_tokens` (the `prompt` format)

    def to_dict(self) -> dict:
        return {
            "lines": self.lines, "bytes": self.bytes, "records": self.records, "valid": self.valid,
            "invalid": self.invalid, "blank_lines": self.blank_lines,
            "roles": {r: s.to_dict() for r, s in self.roles.items()},
            "turns": self.turns.to_dict() if self.turns else None,
            "output_tokens": self.output_tokens.to_dict() if self.output_tokens else None,
        }


@dataclass(frozen=True)
class TokenStats:
    """Token lengths of the valid records with one tokenizer (raw text: no chat template, no BOS)."""

    tokenizer_id: str
    exact: bool
    records: int
    prompt: Summary | None
    answer: Summary | None
    prompt_total: int
    answer_total: int
    joint: JointHistogram | None
    answer_source: str | None = "tokens"  # "tokens", "output_tokens" (declared) or None (no answers)
    error: str | None = None

    @property
    def total(self) -> int:
        return self.prompt_total + self.answer_total

    def to_dict(self) -> dict:
        return {
            "tokenizer": self.tokenizer_id, "exact": self.exact, "records": self.records,
            "prompt": self.prompt.to_dict() if self.prompt else None,
            "answer": self.answer.to_dict() if self.answer else None,
            "prompt_total": self.prompt_total, "answer_total": self.answer_total, "total": self.total,
            "answer_source": self.answer_source,
            "joint": self.joint.to_dict() if self.joint else None, "error": self.error,
        }


@dataclass(frozen=True)
class ConsumerChecks:
    """What consumers of the file would do with it.

    ``vllm_dropped``: records vLLM's ShareGPT loader silently skips (fewer than 2 turns, prompt or
    output under 4 tokens, prompt over 1024, prompt + output over 2048). ``None`` when the format
    has no prompt/answer pairs. Token counts come from ``tokenizer_id`` (an estimate when
    ``estimated``).
    """

    tokenizer_id: str
    estimated: bool
    vllm_dropped: int | None = None
    vllm_reasons: Mapping[str, int] = field(default_factory=dict)
    vllm_lines: tuple[int, ...] = ()
    context_length: int | None = None
    over_context: int = 0
    over_context_lines: tuple[int, ...] = ()
    duplicate_prompts: int = 0  # records whose normalised prompt repeats an earlier record's
    duplicate_examples: tuple[tuple[int, int], ...] = ()  # (line, line of the first occurrence)

    def to_dict(self) -> dict:
        return {
            "tokenizer": self.tokenizer_id, "estimated": self.estimated,
            "vllm_sharegpt": None if self.vllm_dropped is None else {
                "dropped": self.vllm_dropped, "reasons": dict(self.vllm_reasons), "lines": list(self.vllm_lines)},
            "context_length": self.context_length,
            "over_context": self.over_context if self.context_length else None,
            "over_context_lines": list(self.over_context_lines),
            "duplicate_prompts": self.duplicate_prompts,
            "duplicate_examples": [{"line": a, "first": b} for a, b in self.duplicate_examples],
        }


@dataclass(frozen=True)
class ScanReport:
    """The result of a scan. ``complete`` is False when it was cancelled (counts so far) or the file
    changed while it was read; ``incomplete_reason`` then says which ("cancelled", or how the file changed)."""

    path: str
    format: FormatGuess
    complete: bool
    records: int
    valid: int
    invalid: int
    errors: tuple[LineIssue, ...]  # the first ``max_issues``, by line
    warnings: tuple[LineIssue, ...]
    error_counts: Mapping[str, int]  # every error, by kind
    warning_counts: Mapping[str, int]
    stats: DatasetStats
    tokens: Mapping[str, TokenStats]
    checks: ConsumerChecks
    elapsed: float
    workers: int = 1
    incomplete_reason: str | None = None

    def with_tokens(self, tr: TokenReport) -> "ScanReport":
        """This report with the token statistics and token-based checks of a later token pass."""
        checks = replace(tr.checks, duplicate_prompts=self.checks.duplicate_prompts,
                         duplicate_examples=self.checks.duplicate_examples)
        return replace(self, tokens=tr.tokens, checks=checks, complete=self.complete and tr.complete,
                       elapsed=self.elapsed + tr.elapsed,
                       incomplete_reason=self.incomplete_reason or tr.incomplete_reason)

    @property
    def error_total(self) -> int:
        return sum(self.error_counts.values())

    @property
    def warning_total(self) -> int:
        return sum(self.warning_counts.values())

    def to_dict(self, max_issues: int | None = None) -> dict:
        errs = self.errors if max_issues is None else self.errors[:max_issues]
        warns = self.warnings if max_issues is None else self.warnings[:max_issues]
        return {
            "file": self.path, "format": self.format.format, "detected": self.format.to_dict(),
            "complete": self.complete, "incomplete_reason": self.incomplete_reason, "records": self.records, "valid": self.valid, "invalid": self.invalid,
            "errors": [e.to_dict() for e in errs], "warnings": [w.to_dict() for w in warns],
            "error_counts": dict(self.error_counts), "warning_counts": dict(self.warning_counts),
            "stats": self.stats.to_dict(),
            "tokens": {k: v.to_dict() for k, v in self.tokens.items()},
            "checks": self.checks.to_dict(),
            "elapsed": round(self.elapsed, 3), "workers": self.workers,
        }


@dataclass(frozen=True)
class TokenReport:
    """The token pass alone (``scan_tokens``): token statistics and the token-based checks."""

    tokens: Mapping[str, TokenStats]
    checks: ConsumerChecks  # duplicate-prompt fields empty: the structure pass finds those
    complete: bool
    elapsed: float
    incomplete_reason: str | None = None  # "cancelled", or how the file changed during the pass


@dataclass(frozen=True)
class ExportResult:
    path: str
    to_format: str
    from_format: str
    converted: int
    skipped: int
    skipped_reasons: Mapping[str, int]
    output_tokens_from: str | None = None  # tokenizer id used for `output_tokens`, if any

    def to_dict(self) -> dict:
        return asdict(self) | {"skipped_reasons": dict(self.skipped_reasons)}


# ---------------------------------------------------------------- distributions

def _nearest_rank(sorted_items: list[tuple[int, int]], total: int, q: float) -> int:
    """The q-quantile (nearest rank) of a distribution given as sorted (value, count) pairs."""
    rank = max(1, -(-int(q * total * 1000) // 1000))  # ceil(q * total), robust to float noise
    seen = 0
    for value, count in sorted_items:
        seen += count
        if seen >= rank:
            return value
    return sorted_items[-1][0]


def histogram_of(counts: Mapping[int, int], bins: int = 20) -> Histogram:
    """Up to ``bins`` equal-width whole-number bins from min to max."""
    lo, hi = min(counts), max(counts)
    width = max(1, -(-(hi - lo + 1) // bins))
    n = -(-(hi - lo + 1) // width)
    edges = tuple(lo + i * width for i in range(n + 1))
    out = [0] * n
    for value, count in counts.items():
        out[min(n - 1, (value - lo) // width)] += count
    return Histogram(edges=edges, counts=tuple(out))


def summarize(counts: Mapping[int, int] | Counter, bins: int = 20) -> Summary | None:
    """Exact min/mean/percentiles/max of a distribution given as {value: count}; None if empty."""
    items = sorted((v, c) for v, c in counts.items() if c)
    total_n = sum(c for _, c in items)
    if not total_n:
        return None
    total = sum(v * c for v, c in items)
    return Summary(
        count=total_n, total=total, min=items[0][0], mean=total / total_n,
        p50=_nearest_rank(items, total_n, 0.5), p90=_nearest_rank(items, total_n, 0.9),
        p99=_nearest_rank(items, total_n, 0.99), max=items[-1][0],
        histogram=histogram_of(dict(items), bins),
    )


def joint_of(cells: Mapping[tuple[int, int], int]) -> JointHistogram | None:
    """A JointHistogram from counts keyed by (prompt bit_length, answer bit_length)."""
    if not cells:
        return None
    np_ = max(p for p, _ in cells) + 1
    na = max(a for _, a in cells) + 1
    grid = [[0] * na for _ in range(np_)]
    for (p, a), c in cells.items():
        grid[p][a] += c
    edges = lambda n: tuple([0] + [1 << i for i in range(n)])  # noqa: E731 - bin b = [edges[b], edges[b+1])
    return JointHistogram(prompt_edges=edges(np_), answer_edges=edges(na), counts=tuple(tuple(r) for r in grid))
