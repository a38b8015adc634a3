"""The scan: a structure pass (parse + validate + statistics) and an optional token pass.

``scan()`` is a generator: it yields ``ScanProgress`` about every ``time_budget`` seconds and
ends with a ``ScanReport``. It checks ``cancel`` (an Event-like object with ``is_set()`` or a
callable) between batches; a cancelled scan still ends with a report (``complete=False``).

Structure pass: each line is decoded by its format's typed decoders (``records``) and counted
from the Structs; only the lines they refuse go through orjson and the dict validators
(``feed_slow``), which name each problem. Both give the same counts and issues. Chat lines go by
sub-blocks of ``SUB_BLOCK`` (256 KB) cut at newlines (the block path, ``Structure._feed_block``):
a sub-block's lines are decoded in one C call as one JSON array of plain records (their newlines
made commas, so the call fails unless each line holds exactly one record: a blank, BOM, bad or
other-shaped line sends that sub-block line by line, with today's issues, line numbers and order),
counted together, and cleared of repeated keys by one colon count. Line by line, chat lines of
more than ``LONG_LINES`` bytes on average over a run go straight to orjson (the faster on long
texts). JSONL files of
at least ``PARALLEL_MIN_BYTES`` (256 MB) are cut at newlines into one range per worker process
(``workers``, default: 2 or the CPU count if smaller); the parsers hold the GIL, so processes
rather than threads. Each worker keeps its own counters and the first ``max_issues`` problems
with range-relative line numbers; the parent adds the line offsets and merges. Memory is bounded at any file size: chunked reads, counts per value (not lists) for the
distributions, and the prompt hashes for duplicate detection (flat arrays, in C) spill to a
temporary folder in 64 buckets when there are more than ~2 M of them.

Token pass (only with ``tokenizers``): re-reads the file, re-validates quietly and tokenizes
the valid records' prompts and answers in batches with ``count_many`` (Hugging Face batch calls
run on all cores outside the GIL; tiktoken's batch uses two threads). A stream (``-``, a pipe, a
FIFO) cannot be re-read: its valid records are counted as the structure pass meets them.

A regular file's size, modification time and inode are compared before and after: a file that
changed meanwhile gives a report with ``complete=False`` and the change in ``incomplete_reason``.

Consumer checks use ``tokenizers[0]``; with no tokenizer they run during the structure pass
with the ``estimate`` heuristic (CJK/1.5 + other/4 characters) and say so.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import replace
from itertools import chain, compress, repeat
from operator import add, attrgetter, eq, ne, or_
from typing import IO, Any, Callable, Iterator, Mapping, Sequence, cast

from msgspec import DecodeError

from ..errors import TokdeckError
from ..messages import JOIN, PlainMessage
from .detect import detect_format
from .formats import NO_REPLY, PAIRED, VALIDATORS, Rec
from .model import (ERROR, WARNING, ConsumerChecks, DatasetStats, FormatGuess, LineIssue, RoleStats,
                    ScanProgress, ScanReport, TokenReport, TokenStats, joint_of, summarize)
from .parsing import BOM, JSONDecodeError, TooDeep, diagnose, duplicate_keys, maybe_duplicate_keys, parse, visible
from .reader import ArrayError, Lines, TooLong, array_elements, line_blocks, line_chunks, split_lines, split_points
from .records import ARRAY_DECODERS, DECODERS, READERS, encode
from .source import FileState, Replay, check_readable, is_stream, open_stream

#: lines of more bytes than this on average (over RUN_LINES) take orjson's path: on long texts orjson
#: parses and re-encodes (the repeated-key check) faster than msgspec (measured: 6.7 KB lines 1.1x
#: slower typed; 0.7 KB lines 2x faster typed; even at about 4 KB)
LONG_LINES = 2048
RUN_LINES = 256  # plain chat lines counted together: few calls, and their bytes still in the CPU's cache
#: bytes of lines the block path decodes in one call: a sub-block's records are counted while they are
#: still in the CPU's cache (all of a 4 MB block's at once: slower)
SUB_BLOCK = 256 << 10
MAX_BLOCK_SKIPS = 63  # sub-blocks at most read line by line after refused ones before the block path is tried again
PARALLEL_MIN_BYTES = 256 << 20  # below this, starting the workers costs more than it saves
MAX_ISSUES = 1000
EXAMPLES = 20
VLLM_MIN, VLLM_MAX_PROMPT, VLLM_MAX_TOTAL = 4, 1024, 2048


def cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return cancel.is_set()
    return bool(cancel())


def prompt_hash(text: str) -> int:
    """64-bit hash of the normalised prompt (surrounding whitespace stripped).

    Python's own string hash (SipHash, 64 bits): 4x cheaper than blake2b here. It is salted
    per process, so the worker processes of one scan are all started with the same
    PYTHONHASHSEED, and hashes are only ever compared within one scan.
    """
    return hash(text.strip())


class HashLines:
    """(hash, line) pairs, appended to two flat ``array('q')`` in C (the scan's hot path). Past
    ``limit`` pairs they are sorted into 64 buckets by hash and appended to files in ``spill_dir``
    (memory stays bounded at any file size)."""

    NB = 64

    def __init__(self, limit: int = 1 << 21, spill_dir: str | None = None, tag: str = "h"):
        self.limit = limit
        self.spill_dir = spill_dir
        self.tag = tag
        self.spilled = False
        self.hashes = array("q")
        self.lines = array("q")

    def add(self, h: int, line: int) -> None:
        self.hashes.append(h)
        self.lines.append(line)
        if len(self.hashes) >= self.limit:
            self.spill()

    def add_many(self, lines: Sequence[int], texts: list[str]) -> None:
        """``add(prompt_hash(text), line)`` for each non-empty text (inlined: the scan's hot path)."""
        if not all(texts):  # an empty prompt is no duplicate
            keep = list(map(bool, texts))
            lines, texts = list(compress(lines, keep)), list(compress(texts, keep))
        self.hashes.extend(map(hash, map(str.strip, texts)))
        self.lines.extend(lines)
        if len(self.hashes) >= self.limit:
            self.spill()

    def _file(self, i: int) -> str:
        assert self.spill_dir is not None  # spill() sets it first
        return os.path.join(self.spill_dir, f"{self.tag}-{i}.bin")

    def in_buckets(self) -> list[array]:
        """The pairs held in memory, by bucket (h & 63): h, line, h, line... in order."""
        buckets = [array("q") for _ in range(self.NB)]
        for h, line in zip(self.hashes, self.lines):
            b = buckets[h & 63]
            b.append(h)
            b.append(line)
        return buckets

    def spill(self) -> None:
        if self.spill_dir is None:
            self.spill_dir = tempfile.mkdtemp(prefix="tokdeck-scan-")
        for i, b in enumerate(self.in_buckets()):
            if b:
                with open(self._file(i), "ab") as fh:
                    b.tofile(fh)
        self.hashes, self.lines = array("q"), array("q")
        self.spilled = True

    def bucket(self, i: int) -> array:
        """Bucket ``i``'s pairs, spilled and in memory, in order."""
        out = array("q")
        if self.spilled and os.path.exists(self._file(i)):
            with open(self._file(i), "rb") as fh:
                out.frombytes(fh.read())
        if self.hashes:
            out.extend(self.in_buckets()[i])
        return out

    def portable(self, spill_dir: str, tag: str, bucket_above: int | None = None) -> dict:
        """Describe the pairs for a worker process to hand back: spilled ones stay in their
        buckets; a set never spilled goes as its two arrays, in one file of ``spill_dir``, unless
        it holds more than ``bucket_above`` pairs: then it goes by buckets too (``find_repeats``
        will need them: the worker sorts them, in parallel with the others, not the parent)."""
        by_buckets = self.spilled or (bucket_above is not None and len(self.hashes) > bucket_above)
        if by_buckets:
            if not self.spilled:  # its buckets' files among the scan's, named apart from the other workers'
                self.spill_dir, self.tag = spill_dir, tag
            self.spill()
            return {"spill_dir": self.spill_dir, "tag": self.tag}
        path = os.path.join(spill_dir, f"{tag}-flat.bin")
        with open(path, "wb") as fh:
            self.hashes.tofile(fh)
            self.lines.tofile(fh)
        return {"flat": path, "n": len(self.hashes)}

    @classmethod
    def from_portable(cls, d: dict) -> "HashLines":
        if "flat" in d:
            h = cls()
            with open(d["flat"], "rb") as fh:
                h.hashes.fromfile(fh, d["n"])
                h.lines.fromfile(fh, d["n"])
            return h
        h = cls(spill_dir=d["spill_dir"], tag=d["tag"])
        h.spilled = True
        return h


#: pairs that ``find_repeats`` checks with one set (~75 MB for 1 M); more go bucket by bucket
ONE_SET = 1 << 20


def find_repeats(sources: Sequence[tuple[HashLines, int]], keep: int = EXAMPLES) -> tuple[int, list]:
    """(count of repeats, the first ``keep`` (line, first line) by line) across sources in file order.

    A set gives the number of repeats at C speed: one over every pair when none spilled and they
    are few enough, else one per bucket. Only repeated hashes are then looked up in Python.
    """
    if not any(src.spilled for src, _ in sources) and sum(len(src.hashes) for src, _ in sources) <= ONE_SET:
        return _repeats([[(src.hashes, src.lines, offset) for src, offset in sources]], keep)
    for src, _ in sources:
        if src.spilled:
            src.spill()  # the rest too: then each bucket is one file
    held = [None if src.spilled else src.in_buckets() for src, _ in sources]

    def parts(b: int):
        for (src, offset), mine in zip(sources, held):
            arr = src.bucket(b) if mine is None else mine[b]
            yield arr[0::2], arr[1::2], offset

    return _repeats((list(parts(b)) for b in range(HashLines.NB)), keep)


def _repeats(groups, keep: int) -> tuple[int, list]:
    """``find_repeats`` over groups of pairs that share no hash: each a list of (hashes, lines,
    line offset) in file order."""
    count = 0
    examples: list[tuple[int, int]] = []
    for parts in groups:
        hashes = array("q")
        for hs, _, _ in parts:
            hashes.extend(hs)
        repeats = len(hashes) - len(set(hashes))
        if not repeats:
            continue
        count += repeats
        repeated = {h for h, n in Counter(hashes).items() if n > 1}
        first: dict[int, int] = {}
        for hs, lines, offset in parts:
            for i in compress(range(len(hs)), map(repeated.__contains__, hs)):
                h, line = hs[i], lines[i] + offset
                if h not in first:
                    first[h] = line
                    continue
                examples.append((line, first[h]))
                if len(examples) > 4 * keep:
                    examples = sorted(examples)[:keep]
    return count, sorted(examples)[:keep]


def estimate_tokens(text: str) -> int:
    """The ``estimate`` tokenizer's count; ASCII text takes a shortcut (same result)."""
    if text.isascii():
        return (len(text) + 2) >> 2  # int(len / 4 + 0.5), in integers
    global _ESTIMATOR
    if _ESTIMATOR is None:
        from ..tokenizers.base import EstimateTokenizer
        from ..tokenizers.registry import ESTIMATE_INFO

        _ESTIMATOR = EstimateTokenizer(ESTIMATE_INFO)
    return _ESTIMATOR.count(text)


_ESTIMATOR: Any = None


def _refuse(raw: bytes):
    raise DecodeError("no typed decoder for this format")


def _decode_any(decoders, raw: bytes):
    """The record as the first of ``decoders`` that accepts ``raw`` decodes it, or None."""
    for decode in decoders:
        try:
            return decode(raw)
        except DecodeError:
            pass
    return None


_MESSAGES, _ROLE, _CONTENT = attrgetter("messages"), attrgetter("role"), attrgetter("content")


def _prompt_answer(msgs: Sequence[PlainMessage]) -> tuple[str, str | None, int]:
    """A plain conversation's prompt (the non-empty texts before its last assistant message,
    joined; all of them without one), its answer (that message's text, or None) and the colons
    of the texts after the answer."""
    last = len(msgs) - 1
    while last >= 0 and msgs[last].role != "assistant":
        last -= 1
    if last < 0:
        return JOIN.join([t for m in msgs if (t := m.content)]), None, 0
    return (JOIN.join([t for m in msgs[:last] if (t := m.content)]), msgs[last].content,
            sum([m.content.count(":") for m in msgs[last + 1:]]))


MAX_MESSAGE = 300  # characters of an issue's message: some quote the record (a role, a key, a URL)


def issue_text(message: str) -> str:
    """A message as reports show it: one line, no control characters, at most MAX_MESSAGE characters."""
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    return visible(message)


class _Checks:
    """vLLM's ShareGPT length filter and the context-length check, from token counts."""

    def __init__(self, fmt: str, context_length: int | None):
        self.paired = fmt in PAIRED
        self.context_length = context_length
        self.reasons: Counter = Counter()
        self.dropped = 0
        self.lines: list[int] = []
        self.over = 0
        self.over_lines: list[int] = []

    def add(self, line: int, prompt: int, answer: int | None) -> None:
        if self.paired:
            why = None
            if answer is None:
                why = "fewer than 2 turns"
            elif prompt < VLLM_MIN:
                why = "prompt < 4 tokens"
            elif answer < VLLM_MIN:
                why = "output < 4 tokens"
            elif prompt > VLLM_MAX_PROMPT:
                why = "prompt > 1024 tokens"
            elif prompt + answer > VLLM_MAX_TOTAL:
                why = "prompt + output > 2048 tokens"
            if why:
                self.dropped += 1
                self.reasons[why] += 1
                if len(self.lines) < EXAMPLES:
                    self.lines.append(line)
        if self.context_length and prompt + (answer or 0) > self.context_length:
            self.over += 1
            if len(self.over_lines) < EXAMPLES:
                self.over_lines.append(line)

    def add_texts(self, lines: Sequence[int], prompts: list[str], answers: list, declared: bool,
                  lengths: tuple[list[int], list[int]] | None = None) -> None:
        """``add`` for records given by their texts, estimated (``answers``: texts or None, or when
        ``declared`` the declared output tokens). A batch that no check can catch, whatever its
        texts' characters, is cleared without estimating a single text (nearly every batch).
        ``lengths``: the prompts' and answers' lengths (texts), when the caller has them."""
        if not self._clear(prompts, answers, declared, lengths):
            for line, prompt, answer in zip(lines, prompts, answers):
                self.add(line, estimate_tokens(prompt),
                         answer if declared or answer is None else estimate_tokens(answer))

    def _clear(self, prompts: list[str], answers: list, declared: bool,
               lengths: tuple[list[int], list[int]] | None = None) -> bool:
        """Whether no record of the batch can be dropped or over the context. A text's estimate lies
        between len/4 (no CJK) and len/1.5 (all CJK) tokens, rounded; it is len/4 for ASCII."""
        if None in answers:
            if self.paired:  # an answer missing: "fewer than 2 turns"
                return False
            answers, declared, lengths = [a or 0 for a in answers], True, None  # no answer: no tokens
        plen = list(map(len, prompts)) if lengths is None else lengths[0]
        ascii = all(map(str.isascii, prompts))
        if declared:
            per = 4 if ascii else 1.5
            most = int(max(plen) / per + 0.5) + max(answers)
            fewest_answer = min(answers)
        else:
            alen = list(map(len, answers)) if lengths is None else lengths[1]
            per = 4 if ascii and all(map(str.isascii, answers)) else 1.5
            most = int(max(map(add, plen, alen)) / per) + 1  # two roundings: at most one token more
            fewest_answer = (min(alen) + 2) >> 2
        if self.context_length and most > self.context_length:
            return False
        return not self.paired or ((min(plen) + 2) >> 2 >= VLLM_MIN and fewest_answer >= VLLM_MIN
                                   and int(max(plen) / per + 0.5) <= VLLM_MAX_PROMPT and most <= VLLM_MAX_TOTAL)

    def merge(self, other: "_Checks", offset: int) -> None:
        self.reasons.update(other.reasons)
        self.dropped += other.dropped
        self.lines = sorted(self.lines + [x + offset for x in other.lines])[:EXAMPLES]
        self.over += other.over
        self.over_lines = sorted(self.over_lines + [x + offset for x in other.over_lines])[:EXAMPLES]


class Structure:
    """Counters of the structure pass over one byte range (line numbers relative to it)."""

    def __init__(self, fmt: str, at_file_start: bool = True, estimate_checks: bool = True,
                 context_length: int | None = None, max_issues: int = MAX_ISSUES):
        self.fmt = fmt
        self._format_functions()
        self.at_file_start = at_file_start
        self.max_issues = max_issues
        self.lines = self.bytes = self.records = self.valid = self.invalid = self.blank = 0
        self.errors: list[tuple] = []  # (line, kind, message, column)
        self.warnings: list[tuple] = []
        self.error_counts: Counter = Counter()
        self.warning_counts: Counter = Counter()
        self.roles: dict[str, list[int]] = {}  # role -> [messages, chars, max]
        self.turns: Counter = Counter()
        self.declared: Counter = Counter()
        self.prompts = HashLines(tag="prompts")
        self.ids = HashLines(tag="ids") if fmt == "openai-batch" else None
        self.checks = _Checks(fmt, context_length) if estimate_checks else None
        #: called with (line, Rec) for each valid record (a stream's token pass)
        self.on_valid: Callable[[int, Rec], object] | None = None
        self.compact = True  # the lines so far are their records' compact encodings (see _repeated_keys_and_replies)
        self.block_refusals = self.skip_bytes = 0  # the block path's backing off (see _feed_block)

    def _format_functions(self) -> None:
        fmt = self.fmt
        self.validate = VALIDATORS[fmt]
        self.decoders = DECODERS.get(fmt, ())
        self.read = READERS.get(fmt)

    # ------------------------------------------------------------------ issues
    def error(self, line: int | None, kind: str, message: str, column: int | None = None) -> None:
        self.error_counts[kind] += 1
        if len(self.errors) < self.max_issues:
            self.errors.append((line, kind, issue_text(message), column))

    def warning(self, line: int | None, kind: str, message: str, column: int | None = None) -> None:
        self.warning_counts[kind] += 1
        if len(self.warnings) < self.max_issues:
            self.warnings.append((line, kind, issue_text(message), column))

    # ----------------------------------------------------------------- feeding
    def feed_chunk(self, piece: Lines | TooLong) -> None:
        """The next piece of ``reader.line_chunks``: whole lines (or a ``TooLong``). In a chat
        format, a piece goes by sub-blocks of about ``SUB_BLOCK`` bytes cut at newlines through the
        block path (``_feed_block``); any other line by line (``feed_lines``)."""
        decode_array = ARRAY_DECODERS.get(self.decoders[0]) if self.decoders and type(piece) is tuple else None
        if decode_array is None:
            self.feed_lines(split_lines(piece))
            return
        data, start, stop = cast(Lines, piece)
        at = start
        while at < stop:
            if self.skip_bytes:  # blocks were refused just before: line by line for a while
                end = data.find(b"\n", at + self.skip_bytes, stop) + 1 or stop
                self.skip_bytes = max(0, self.skip_bytes - (end - at))
            else:
                end = data.find(b"\n", at + SUB_BLOCK, stop) + 1 or stop
                if self._feed_block(data, at, end, decode_array):
                    at = end
                    continue
            # line by line: the whole piece in one split when that is what is left of it
            lines = split_lines(piece if (at, end) == (start, stop) else (data[at:end], 0, end - at))
            self.lines = self._feed_chat(lines, self.lines)
            at = end

    def _feed_block(self, data: bytes, at: int, end: int, decode_array: Callable[[bytes], list]) -> bool:
        """The whole lines ``data[at:end]`` of a chat format, decoded in one call as a JSON array
        of plain records (their newlines made commas: the array fails unless each line holds
        exactly one such record) and counted together (``_count_plain``); False when it refuses
        them (a line of another shape, a bad, blank or BOM line): then the caller feeds them line
        by line, with the same issues, line numbers and order, and the next blocks too, more of
        them after each refusal in a row (files of mixed shapes)."""
        stop = end - 1 if data[end - 1] == 10 else end  # the last line's newline is no item separator
        try:
            records = decode_array(b"[%s]" % data[at:stop].replace(b"\n", b","))
        except DecodeError:
            records = []
        if not records:  # refused (or blank)
            self.block_refusals = min(2 * self.block_refusals + 1, MAX_BLOCK_SKIPS)
            self.skip_bytes = self.block_refusals * SUB_BLOCK
            return False
        self.block_refusals = 0
        first = self.lines + 1
        self.lines += len(records)
        self._count_plain(records, (data, at, end), first)
        return True

    def feed_lines(self, lines: list) -> None:
        """The next physical lines (without their newline; a ``TooLong`` for an overlong one).

        A line its format's typed decoders accept is counted from the Structs (``records``);
        the others (and blank lines, overlong lines, line 1 with a BOM) take the slow path.
        """
        if self.fmt in ("openai-chat", "message-list"):
            self.lines = self._feed_chat(lines, self.lines)
            return
        decode, read = self.decoders[0] if self.decoders else _refuse, self.read
        n = self.lines
        for raw in lines:
            n += 1
            try:
                record = decode(raw) if type(raw) is bytes else None
            except DecodeError:
                record = None
            if record is None:
                self._feed_other(n, raw)
            else:
                self._count_read(n, raw, record, read)
        self.lines = n

    def _feed_other(self, n: int, raw, tried: int = 1) -> None:
        """Line ``n``, which the first typed decoder refused: an overlong or blank line, line 1
        with a BOM, a record of the format's other decoders, or one for the slow path."""
        if type(raw) is not bytes:  # TooLong
            self.records += 1
            self.invalid += 1
            self.error(n, "line-too-long", f"a line of {raw.size:,} bytes (over the limit; skipped)")
            return
        if n == 1 and self.at_file_start and raw.startswith(BOM):
            raw, tried = raw[3:], 0
        if not raw or raw.isspace():
            self.blank += 1
            self.warning(n, "blank-line", "a blank line")
            return
        if tried < len(self.decoders):
            self.feed(n, raw, tried=tried)
        else:
            self.feed_slow(n, raw)

    def feed(self, n: int, raw: bytes, col0: int = 0, tried: int = 0) -> None:
        """One record starting on line ``n`` (``col0``: its column offset on that line; ``tried``:
        the typed decoders that already refused it)."""
        record = _decode_any(self.decoders[tried:], raw)
        if record is None:
            self.feed_slow(n, raw, col0)
        elif self.fmt in ("openai-chat", "message-list"):
            self._count_chat(n, raw, record)
        else:
            self._count_read(n, raw, record, self.read)

    def feed_slow(self, n: int, raw: bytes, col0: int = 0) -> None:
        """One record the typed decoders refused (or whose Structs break a rule): orjson, the
        dict validators of ``formats``, and ``diagnose`` for why a line is not JSON."""
        self.records += 1
        try:
            obj, encoded = parse(raw)
        except (JSONDecodeError, TooDeep):
            kind, message, col, lines_in = diagnose(raw)
            self.invalid += 1
            if col is not None and not lines_in:
                col += col0
            self.error(n + lines_in, kind, message, col)
            return
        if maybe_duplicate_keys(raw, encoded):
            self.duplicate_keys(n, raw)
        errs: list = []
        warns: list = []
        rec: Rec | None = self.validate(obj, errs, warns)
        for kind, message in warns:
            self.warning(n, kind, message)
        if errs or rec is None:
            self.invalid += 1
            for kind, message in errs:
                self.error(n, kind, message)
            return
        self.count(n, rec)

    def duplicate_keys(self, n: int, raw: bytes) -> None:
        for key in duplicate_keys(raw):
            self.warning(n, "duplicate-key", f'the key "{key}" appears twice in one object (the last value is used)')

    def _count_read(self, n: int, raw: bytes, record, read) -> None:
        """One typed record, through its format's reader (``records``)."""
        got = read(record)
        if got is None:  # a rule the schema cannot express is broken: the slow path says which
            self.feed_slow(n, raw)
            return
        rec, warns = got
        self.records += 1
        if maybe_duplicate_keys(raw, encode(record), same_order=False):
            self.duplicate_keys(n, raw)
        for kind, message in warns:
            self.warning(n, kind, message)
        self.count(n, rec)

    def _count_chat(self, n: int, raw: bytes, record) -> None:
        """One typed chat record, outside the hot loop (an element of a JSON array file)."""
        msgs = record.messages if self.fmt == "openai-chat" else record
        if type(msgs[0]) is PlainMessage:
            self._feed_chat([raw], n - 1)  # decodes it again: a single record, off the hot path
        else:
            self._count_read(n, raw, record, self.read)

    def _feed_chat(self, lines: list, n: int) -> int:
        """``feed_lines`` for the chat formats: the hot path of the scan. A line of plain messages
        (nearly every line of most files) costs one decoder call here; the records of consecutive
        such lines are counted together, ``RUN_LINES`` at most (``_count_plain``: statistics,
        prompt hashes, checks and the repeated-key check over the run, mostly in C). Any other line
        goes through ``_feed_other`` after the run before it, so issues stay in line order.
        ``n``: the line before the first; returns the last line's number."""
        decode = self.decoders[0] if self.decoders else _refuse
        for at in range(0, len(lines), RUN_LINES):
            chunk = lines[at:at + RUN_LINES]
            records: list = []
            add = records.append
            start = 0  # index in ``chunk`` of the run's first line
            if sum(map(len, chunk)) > LONG_LINES * len(chunk):  # long lines: orjson's path is the faster
                for i, raw in enumerate(chunk, n + at + 1):
                    self._feed_other(i, raw, len(self.decoders))
                continue
            for i, raw in enumerate(chunk):
                try:
                    add(decode(raw))
                    continue
                except (DecodeError, TypeError):  # TypeError: a TooLong
                    pass
                if records:
                    self._count_plain(records, chunk[start:i], n + at + start + 1)
                    records = []
                    add = records.append
                self._feed_other(n + at + i + 1, raw)
                start = i + 1
            if records:
                self._count_plain(records, chunk[start:], n + at + start + 1)
        return n + len(lines)

    def _count_plain(self, records: list, raws: list[bytes] | Lines, first: int) -> None:
        """Count a run of plain chat records decoded from ``raws`` (lines ``first`` on; a list of
        lines, or the block path's sub-block: (piece, start, end)): each step is a C call over the whole run (map,
        slices, Counter); Python per record only for conversations of unusual shapes and for the
        rare issues."""
        count = len(records)
        lines = range(first, first + count)
        msgss = list(map(_MESSAGES, records)) if self.fmt == "openai-chat" else records
        turns = list(map(len, msgss))
        k = turns[0]
        one_shape = turns.count(k) == count
        self.records += count
        self.valid += count
        if one_shape:
            self.turns[k] += count
        else:
            self.turns.update(turns)
        flat = list(chain.from_iterable(msgss))
        roles = list(map(_ROLE, flat))
        contents: list[str] = list(map(_CONTENT, flat))
        sizes = list(map(len, contents))
        self._add_roles(roles, sizes, count)
        trailing: list[int] | None = None  # colons of the texts after the answer, when some record has any
        answers: list[str | None]
        lengths = None  # (the prompts' lengths, the answers'), when they are columns of ``sizes``
        if one_shape and roles[k - 1::k].count("assistant") == count:
            # one shape, ending with the answer (nearly every run): the prompt's texts are columns of ``contents``
            answers = list(contents[k - 1::k])
            columns = [contents[j::k] for j in range(k - 1)]
            if all(map(all, columns)):  # no empty text to leave out
                prompts = columns[0] if k == 2 else list(map(JOIN.join, zip(*columns))) if k > 2 else [""] * count
                if k == 2:
                    lengths = sizes[0::2], sizes[1::2]
            else:
                prompts = [JOIN.join(filter(None, texts)) for texts in zip(*columns)] if k > 1 else [""] * count
        else:
            prompts, answers, trailing = [], [], []
            for msgs in msgss:
                prompt, answer, after = _prompt_answer(msgs)
                prompts.append(prompt)
                answers.append(answer)
                trailing.append(after)
        self._repeated_keys_and_replies(lines, raws, records, turns, contents, prompts, answers, trailing)
        if self.on_valid is not None:
            for line, msgs, prompt, answer in zip(lines, msgss, prompts, answers):
                self.on_valid(line, Rec([(m.role, len(m.content)) for m in msgs], len(msgs), prompt, answer))
        self._count_many(lines, prompts, answers, lengths)

    def _add_roles(self, roles: list[str], sizes: list[int], count: int) -> None:
        """Messages and characters per role (``sizes``: each message's) of ``count`` records, roles
        in the order they first appear."""
        stats = self.roles
        k = len(roles) // count if len(roles) % count == 0 else 0
        if k and all(col.count(col[0]) == count for col in (roles[j::k] for j in range(k))):
            # one role per position (system, user, assistant...): columns of ``sizes``, in the records' order
            groups = [(roles[j], sizes[j::k]) for j in range(k)]
        else:
            groups = [(role, list(compress(sizes, map(role.__eq__, roles)))) for role in dict.fromkeys(roles)]
        for role, mine in groups:
            s = stats.get(role)
            if s is None:
                stats[role] = [len(mine), sum(mine), max(mine)]
            else:
                s[0] += len(mine)
                s[1] += sum(mine)
                s[2] = max(s[2], max(mine))

    def _repeated_keys_and_replies(self, lines: range, raws: list[bytes] | Lines, records: list, turns: list[int],
                                   contents: list[str], prompts: list[str], answers: list[str | None],
                                   trailing: list[int] | None) -> None:
        """The warnings of a run of plain chat records, line by line: repeated keys, no reply.

        Repeated keys: every key of a plain record is followed by exactly one colon, so a line
        holds as many colons as its keys (1 + 2 per message, or 2 per message in a message list)
        plus the literal colons of its texts, which are their decoded ones unless a colon is
        escaped (``\\u003a``). A repeated key adds its colon (the decoder keeps one of the two
        values). A line is never shorter than its record's compact encoding (msgspec writes each
        string with its shortest escapes; the records hold no numbers), and a repeated key makes it
        longer. So in a file written compact, a sub-block (``raws`` (piece, start, end)) whose
        records encode, as one array, to exactly its length repeats no key: one encode in C clears
        it (cheaper than counting its colons and searching it for escapes, measured 0.12 s against
        0.32 s per 300 MB of chat records). In a file that is not, a sub-block with no escaped colon
        whose colons are exactly its records' keys and text colons repeats none. Any other is
        checked line by line: a line that is its record's compact encoding repeats none; otherwise
        a line with more colons than its record's keys and texts hold (those of its compact
        encoding), or one escaping a colon, may repeat one: ``maybe_duplicate_keys``."""
        suspect: list[bool] | None = None
        keys = 1 if self.fmt == "openai-chat" else 0  # the record's own: "messages"
        if isinstance(raws, tuple):
            piece, at, end = raws
            stop = end - 1 if piece[end - 1] == 10 else end
            if self.compact and len(encode(records)) == stop - at + 2:  # "[" + lines joined by "," + "]"
                raws = []
            elif (not self.compact
                  and piece.count(b":", at, end) == keys * len(records) + 2 * len(contents) + "".join(contents).count(":")
                  and piece.find(b"\\u003", at, end) < 0):
                raws = []
            else:
                raws = split_lines((piece[at:end], 0, end - at))
        assert isinstance(raws, list)
        same = list(map(eq, map(encode, records), raws)) if self.compact and raws else []
        if raws and (not self.compact or not all(same)):
            self.compact = same.count(True) * 2 > len(same)  # a file not written compact stops trying
            texts = [a or "" for a in answers] if None in answers else cast("list[str]", answers)
            held = map(add, map(add, map(str.count, prompts, repeat(":")), map(str.count, texts, repeat(":"))),
                       map(add, map((2).__mul__, turns), repeat(keys)))
            if trailing is not None:
                held = map(add, held, trailing)
            suspect = list(map(or_, map(ne, map(bytes.count, raws, repeat(b":")), held),
                               map(bytes.__contains__, raws, repeat(b"\\u003"))))
        if (suspect is not None and any(suspect)) or None in answers:
            for i, (line, answer) in enumerate(zip(lines, answers)):
                if suspect is not None and suspect[i]:
                    self.duplicate_keys(line, raws[i])
                if answer is None:
                    self.warning(line, *NO_REPLY)

    def count(self, n: int, rec: Rec) -> None:
        """Statistics of one valid record."""
        self.valid += 1
        if self.on_valid is not None:
            self.on_valid(n, rec)
        fields, turns, prompt, answer, declared, key = rec
        roles = self.roles
        for role, chars in fields:
            s = roles.get(role)
            if s is None:
                roles[role] = [1, chars, chars]
            else:
                s[0] += 1
                s[1] += chars
                if chars > s[2]:
                    s[2] = chars
        if turns is not None:
            self.turns[turns] += 1
        if prompt:
            self.prompts.add(hash(prompt.strip()), n)  # prompt_hash(), inlined
        if key is not None and self.ids is not None:
            self.ids.add(prompt_hash(key), n)
        if self.fmt == "prompt" and declared is not None:
            self.declared[declared] += 1
        if self.checks is not None:  # one record: estimating costs less than clearing (``_Checks._clear``)
            if self.fmt == "prompt":
                answer_tokens = declared
            else:
                answer_tokens = None if answer is None else estimate_tokens(answer)
            self.checks.add(n, estimate_tokens(prompt), answer_tokens)

    def _count_many(self, lines: Sequence[int], prompts: list[str], answers: list,
                    lengths: tuple[list[int], list[int]] | None = None) -> None:
        """The prompt hashes and the estimated checks of valid records in line order; ``answers``:
        texts or None, or for the ``prompt`` format the declared output tokens; ``lengths``: the
        prompts' and answers' lengths when they are at hand."""
        self.prompts.add_many(lines, prompts)
        if self.checks is not None:
            self.checks.add_texts(lines, prompts, answers, self.fmt == "prompt", lengths)

    def portable(self, spill_dir: str, tag: str, bucket_above: int | None = None) -> dict:
        """This state as plain data for another process (hash buckets spilled to ``spill_dir``;
        ``bucket_above``: see ``HashLines.portable``)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("validate", "decoders", "read", "prompts", "ids")}
        d["prompts"] = self.prompts.portable(spill_dir, f"{tag}-prompts", bucket_above)
        d["ids"] = self.ids.portable(spill_dir, f"{tag}-ids") if self.ids is not None else None
        return d

    @classmethod
    def from_portable(cls, d: dict) -> "Structure":
        s = cls.__new__(cls)
        s.__dict__.update(d)
        s._format_functions()
        s.prompts = HashLines.from_portable(d["prompts"])
        s.ids = HashLines.from_portable(d["ids"]) if d["ids"] else None
        return s


def worker_main(argv: list[str] | None = None) -> None:
    """A structure-pass worker process (started by ``_structure_parallel``).

    One byte range; progress lines on stdout; the result pickled to ``<spill_dir>/w<id>.pkl``;
    stops early when ``<spill_dir>/cancel`` exists.
    """
    import gc
    import json
    import pickle
    import sys

    gc.disable()  # a short-lived process whose records die young: collection only costs time (~5%)
    a = json.loads((argv or sys.argv)[1])
    spill_dir, wid = a["spill_dir"], a["wid"]
    cancel_path = os.path.join(spill_dir, "cancel")
    st = Structure(a["fmt"], at_file_start=a["start"] == 0, **a["opts"])
    gen = _gen_range(a["path"], st, a["start"], a["end"], lambda: os.path.exists(cancel_path), a["budget"],
                     lambda: None)
    out = sys.stdout
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            done = stop.value
            break
        out.write(f"P {st.bytes} {st.records} {sum(st.error_counts.values())} {sum(st.warning_counts.values())}\n")
        out.flush()
    with open(os.path.join(spill_dir, f"w{wid}.pkl"), "wb") as fh:
        pickle.dump(st.portable(spill_dir, f"w{wid}", a["bucket_above"]), fh, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(f"D {int(done)}\n")
    out.flush()


_WORKER_CODE = "from tui.core.datasets.scanner import worker_main; worker_main()"


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    return min(2, usable_cpus())


def _structure_parallel(path, guess, size, workers, opts, cancel, time_budget, t0):
    """Run the structure pass in ``workers`` processes; yields progress, returns ([(Structure, done)], dir).

    Plain ``python -c`` subprocesses rather than multiprocessing: nothing depends on how the
    caller's ``__main__`` was started (a script, stdin, a threaded UI), and nothing is forked.
    """
    import json
    import pickle
    import selectors
    import subprocess
    import sys

    cuts = split_points(path, workers)
    spill_dir = tempfile.mkdtemp(prefix="tokdeck-scan-")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (root, env.get("PYTHONPATH")) if x)
    env["PYTHONHASHSEED"] = str(random.randint(1, 2**32 - 1))  # one salt for every worker: see prompt_hash
    ranges = [(cuts[i], cuts[i + 1]) for i in range(workers) if cuts[i + 1] > cuts[i]]
    procs: list[subprocess.Popen[bytes]] = []
    pipes: dict[int, IO[bytes]] = {}
    sel = selectors.DefaultSelector()
    try:
        for wid, (start, end) in enumerate(ranges):
            args = {"path": os.path.abspath(path), "fmt": guess.format, "start": start, "end": end, "opts": opts,
                    "spill_dir": spill_dir, "wid": wid, "budget": min(0.2, time_budget),
                    "bucket_above": ONE_SET // len(ranges)}  # more in all: find_repeats goes by buckets
            err = open(os.path.join(spill_dir, f"w{wid}.err"), "wb")
            proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE, json.dumps(args)], stdout=subprocess.PIPE,
                                    stderr=err, stdin=subprocess.DEVNULL, env=env)
            err.close()
            procs.append(proc)
            assert proc.stdout is not None, "stdout=PIPE"
            pipes[wid] = proc.stdout
            sel.register(proc.stdout, selectors.EVENT_READ, wid)
        progress: dict[int, tuple[int, ...]] = {wid: (0, 0, 0, 0) for wid in range(len(procs))}
        finished: dict[int, bool] = {}
        open_pipes = len(procs)
        flagged = False
        while open_pipes:
            if not flagged and cancelled(cancel):
                open(os.path.join(spill_dir, "cancel"), "wb").close()
                flagged = True
            for key, _ in sel.select(timeout=time_budget):
                wid = key.data
                line = pipes[wid].readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                parts = line.split()
                if parts[0] == b"P":
                    progress[wid] = tuple(int(x) for x in parts[1:5])
                elif parts[0] == b"D":
                    finished[wid] = parts[1] == b"1"
            b, r, e, w = (sum(x[i] for x in progress.values()) for i in range(4))
            yield ScanProgress("structure", b, size, r, e, w, time.monotonic() - t0)
        results = []
        for wid, proc in enumerate(procs):
            proc.wait()
            if proc.returncode or wid not in finished:
                with open(os.path.join(spill_dir, f"w{wid}.err"), "rb") as fh:
                    tail = fh.read().decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"scan worker {wid} failed (exit {proc.returncode}): {tail[0]}")
            with open(os.path.join(spill_dir, f"w{wid}.pkl"), "rb") as fh:
                results.append((Structure.from_portable(pickle.load(fh)), finished[wid]))
    except BaseException:
        shutil.rmtree(spill_dir, ignore_errors=True)
        raise
    finally:
        sel.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for pipe in pipes.values():
            pipe.close()
    return results, spill_dir


def _merge(parts: list[Structure]) -> tuple[Structure, list[int]]:
    """Merge range results in file order; returns the merged state and each range's line offset."""
    total = parts[0]
    offsets = [0]
    for p in parts[1:]:
        off = total.lines
        offsets.append(off)
        for name in ("bytes", "records", "valid", "invalid", "blank"):
            setattr(total, name, getattr(total, name) + getattr(p, name))
        total.lines += p.lines
        for mine, theirs in ((total.errors, p.errors), (total.warnings, p.warnings)):
            room = total.max_issues - len(mine)
            mine.extend((ln + off, *rest) for ln, *rest in theirs[:max(0, room)])
        total.error_counts.update(p.error_counts)
        total.warning_counts.update(p.warning_counts)
        for role, (n, chars, mx) in p.roles.items():
            s = total.roles.setdefault(role, [0, 0, 0])
            s[0] += n
            s[1] += chars
            s[2] = max(s[2], mx)
        total.turns.update(p.turns)
        total.declared.update(p.declared)
        if total.checks is not None and p.checks is not None:
            total.checks.merge(p.checks, off)
    return total, offsets


def _structure_serial(src: str | Replay, guess, st: Structure, size, cancel, time_budget, t0):
    """Yields progress; returns whether the pass finished. ``src``: a file's path or a stream."""
    def progress():
        return ScanProgress("structure", st.bytes, size, st.records, sum(st.error_counts.values()),
                            sum(st.warning_counts.values()), time.monotonic() - t0)

    if guess.container == "json-array":
        # one reader counts the bytes and lines of the whole input, even past a broken array
        with contextlib.ExitStack() as stack:
            if isinstance(src, str):
                reader = Replay(stack.enter_context(open(src, "rb", buffering=0)), keep=False)
            else:
                reader = src.rewind(keep=False)
            deadline = time.monotonic() + time_budget
            try:
                for line, col0, raw, done in array_elements(reader):
                    st.lines = line
                    st.bytes = done
                    st.feed(line, raw, col0)
                    if time.monotonic() >= deadline:
                        if cancelled(cancel):
                            return False
                        yield progress()
                        deadline = time.monotonic() + time_budget
            except ArrayError as exc:
                st.error(exc.line, "invalid-json", f"{exc.message}; nothing after this point was read")
            reader.drain()
            st.lines, st.bytes = reader.lines, reader.bytes
        return True
    if not isinstance(src, str):
        src = src.rewind(keep=False)
    done = yield from _gen_range(src, st, 0, size, cancel, time_budget, progress)
    return done


def _gen_range(src, st, start, end, cancel, time_budget, progress):
    """Feed the byte range [start, end) of the file ``src`` (or the stream ``src``, to its end)
    into ``st``, yielding ``progress()`` on the time budget; returns False when cancelled."""
    deadline = time.monotonic() + time_budget
    for piece, nbytes in line_chunks(src, start, end):
        st.feed_chunk(piece)
        st.bytes += nbytes
        if time.monotonic() >= deadline:
            if cancelled(cancel):
                return False
            yield progress()
            deadline = time.monotonic() + time_budget
    return True


# ------------------------------------------------------------------ token pass

class _TokenAcc:
    def __init__(self, tid: str, exact: bool):
        self.tid, self.exact = tid, exact
        self.prompt: Counter = Counter()
        self.answer: Counter = Counter()
        self.joint: Counter = Counter()
        self.records = 0
        self.error: str | None = None

    def result(self, answer_source: str | None) -> TokenStats:
        return TokenStats(
            tokenizer_id=self.tid, exact=self.exact, records=self.records,
            prompt=summarize(self.prompt), answer=summarize(self.answer),
            prompt_total=sum(v * c for v, c in self.prompt.items()),
            answer_total=sum(v * c for v, c in self.answer.items()),
            joint=joint_of(self.joint), answer_source=answer_source if self.answer else None, error=self.error)


def iter_valid(src: str | Replay, guess: FormatGuess, tally: Counter | None = None) -> Iterator[tuple[int, Rec, Any]]:
    """(line, Rec, parsed record) for every valid record of the file or stream ``src``, in order
    (no statistics kept). ``tally`` (optional) counts the records left out, under "invalid"."""
    tally = Counter() if tally is None else tally
    validate = VALIDATORS[guess.format]
    if not isinstance(src, str):
        src = src.rewind(keep=False)
    if guess.container == "json-array":
        try:
            for line, _, raw, _ in array_elements(src):
                try:
                    obj, _ = parse(raw)
                except (JSONDecodeError, TooDeep):
                    tally["invalid"] += 1
                    continue
                errs: list = []
                rec = validate(obj, errs, [])
                if rec is not None and not errs:
                    yield line, rec, obj
                else:
                    tally["invalid"] += 1
        except ArrayError:
            return
        return
    n = 0
    for lines, _ in line_blocks(src):
        for raw in lines:
            n += 1
            if type(raw) is not bytes:
                tally["invalid"] += 1
                continue
            if n == 1 and raw.startswith(BOM):
                raw = raw[3:]
            if not raw or raw.isspace():
                continue
            try:
                obj, _ = parse(raw)
            except (JSONDecodeError, TooDeep):
                tally["invalid"] += 1
                continue
            errs = []
            rec = validate(obj, errs, [])
            if rec is not None and not errs:
                yield n, rec, obj
            else:
                tally["invalid"] += 1


class _TokenCounter:
    """Token statistics per tokenizer of valid records fed in file order (and the checks with
    ``tokenizers[0]``), counted in batches of about ``batch_chars`` characters."""

    def __init__(self, fmt: str, tokenizers: Sequence, checks: _Checks, batch_chars: int = 4 << 20,
                 batch_records: int = 4096):
        self.tokenizers, self.checks = tokenizers, checks
        self.accs = {tok.id: _TokenAcc(tok.id, tok.info.exact) for tok in tokenizers}
        self.declared = fmt == "prompt"
        self.batch_chars, self.batch_records = batch_chars, batch_records
        self.batch: list[tuple[int, Rec]] = []
        self.chars = 0
        self.records = 0

    def add(self, line: int, rec: Rec) -> bool:
        """Queue one record; True when that filled a batch and it was counted."""
        self.batch.append((line, rec))
        self.chars += len(rec.prompt) + (len(rec.answer) if rec.answer else 0)
        self.records += 1
        if self.chars >= self.batch_chars or len(self.batch) >= self.batch_records:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        batch, declared = self.batch, self.declared
        self.batch, self.chars = [], 0
        if not batch:
            return
        lines = [b[0] for b in batch]
        texts = [b[1].prompt for b in batch]
        n = len(texts)
        if declared:
            answers = [b[1].declared_output for b in batch]
        else:  # prompts and answers in one batch call: fewer, fuller parallel batches
            has = [b[1].answer is not None for b in batch]
            texts += [b[1].answer for b in batch if b[1].answer is not None]
        for k, tok in enumerate(self.tokenizers):
            acc = self.accs[tok.id]
            if acc.error:
                continue
            try:
                counts = tok.count_many(texts)
            except Exception as exc:  # a broken tokenizer spoils its own column only
                acc.error = f"{type(exc).__name__}: {exc}"
                continue
            pc = counts[:n]
            if not declared:
                it = iter(counts[n:])
                answers = [next(it) if h else None for h in has]
            acc.records += n
            acc.prompt.update(pc)
            acc.answer.update(a for a in answers if a is not None)
            acc.joint.update((p.bit_length(), a.bit_length()) for p, a in zip(pc, answers) if a is not None)
            if k == 0:
                for line, p, a in zip(lines, pc, answers):
                    self.checks.add(line, p, a)


def token_pass(path: str, guess: FormatGuess, tokenizers: Sequence, checks: _Checks, size: int,
               cancel=None, time_budget: float = 0.25, batch_chars: int = 4 << 20, batch_records: int = 4096,
               t0: float | None = None):
    """Token statistics per tokenizer (and the checks with ``tokenizers[0]``) from a second read of
    the file. Yields progress; returns (dict id -> _TokenAcc, finished)."""
    t0 = time.monotonic() if t0 is None else t0
    counter = _TokenCounter(guess.format, tokenizers, checks, batch_chars, batch_records)
    deadline = time.monotonic() + time_budget
    for line, rec, _ in iter_valid(path, guess):
        if counter.add(line, rec) and time.monotonic() >= deadline:
            if cancelled(cancel):
                return counter.accs, False
            yield ScanProgress("tokens", 0, size, counter.records, 0, 0, time.monotonic() - t0)
            deadline = time.monotonic() + time_budget
    counter.flush()
    return counter.accs, True


# ------------------------------------------------------------------------ scan

def scan(path: str, format: str | None = None, tokenizers: Sequence = (), context_length: int | None = None,
         cancel=None, time_budget: float = 0.25, workers: int | None = None, max_issues: int = MAX_ISSUES,
         registry=None) -> Iterator[ScanProgress | ScanReport]:
    """Scan ``path``: yields ScanProgress batches, and last a ScanReport.

    ``path`` is a regular file, or a stream read once (``-`` for stdin, a pipe, a FIFO): then the
    token statistics are counted in the same pass and progress has no total (``bytes_total`` 0).
    ``tokenizers``: ids or model names (resolved with ``resolve_model``) or loaded Tokenizer
    objects; ``workers``: processes for the structure pass (default: 2 when the file is JSONL and
    at least 256 MB, else 1; at most the usable CPUs). Raises TokdeckError when the input cannot
    be read or an id is unknown. A file that changes while it is read gives a report marked
    incomplete, with the reason.
    """
    t0 = time.monotonic()
    stream = is_stream(path)
    src: str | Replay
    before: FileState | None
    if stream:
        size, before, src = 0, None, Replay(open_stream(path))
    else:
        size, before, src = check_readable(path), FileState.of(path), path
    spill_dirs: list[str] = []
    try:
        guess = detect_format(src, format)
        toks = resolve_tokenizers(tokenizers, registry)
        if workers is None:
            workers = default_workers() if (guess.container == "jsonl" and size >= PARALLEL_MIN_BYTES) else 1
        if guess.container != "jsonl" or stream:
            workers = 1
        workers = max(1, min(workers, usable_cpus()))  # more processes than CPUs only compete for them
        opts: dict[str, Any] = {"estimate_checks": not toks, "context_length": context_length,
                                "max_issues": max_issues}
        counter = None
        if workers > 1:
            results, spill_dir = yield from _structure_parallel(path, guess, size, workers, opts, cancel,
                                                                time_budget, t0)
            spill_dirs.append(spill_dir)
            workers = len(results)  # a small file has fewer non-empty ranges than workers
            finished = all(d for _, d in results)
            # line numbers of a range are known only when every range before it was read to its end:
            # a cancelled scan keeps the prefix up to the first unfinished range
            stop = next((i for i, (_, d) in enumerate(results) if not d), len(results) - 1)
            parts = [s for s, _ in results[:stop + 1]]
            st, offsets = _merge(parts)
            prompt_sources = [(p.prompts, off) for p, off in zip(parts, offsets)]
            id_sources = [(p.ids, off) for p, off in zip(parts, offsets)] if st.ids is not None else []
        else:
            st = Structure(guess.format, **opts)
            if stream and toks and guess.format != "unknown":  # a stream cannot be read twice: count as it goes
                counter = _TokenCounter(guess.format, toks, _Checks(guess.format, context_length))
                st.on_valid = counter.add
            finished = yield from _structure_serial(src, guess, st, size, cancel, time_budget, t0)
            prompt_sources = [(st.prompts, 0)]
            id_sources = [(st.ids, 0)] if st.ids is not None else []
        for hashes, _ in prompt_sources + id_sources:
            if hashes.spilled and hashes.spill_dir not in spill_dirs:
                spill_dirs.append(hashes.spill_dir)
        dup_count, dup_examples = find_repeats(prompt_sources)
        if id_sources:  # a repeated custom_id makes the Batch API reject the file: an error
            n, examples = find_repeats(id_sources, keep=max_issues)
            for line, first in examples:
                st.errors.append((line, "duplicate-id", f"custom_id repeats the one on line {first}", None))
            if n:
                st.error_counts["duplicate-id"] += n
                st.valid -= n
                st.invalid += n
                st.errors.sort(key=lambda e: e[0])
                del st.errors[max_issues:]
        total_bytes = st.bytes if stream else size
        if guess.format == "openai-batch":
            if st.records > 50_000:
                st.warning(None, "batch-limit", f"{st.records:,} requests: the Batch API takes at most 50,000 per file")
            if total_bytes > 200 * 1000 * 1000:
                st.warning(None, "batch-limit", "over 200 MB: the Batch API takes at most 200 MB per file")

        checks = _consumer_checks(st.checks or _Checks(guess.format, context_length), "estimate", True,
                                  context_length, dup_count, dup_examples)
        tokens: Mapping[str, TokenStats] = {}
        if counter is not None and finished:
            counter.flush()
            answer_source = "output_tokens" if guess.format == "prompt" else "tokens"
            tokens = {tid: acc.result(answer_source) for tid, acc in counter.accs.items()}
            checks = _consumer_checks(counter.checks, toks[0].id, not toks[0].info.exact, context_length,
                                      dup_count, dup_examples)
        elif (toks and finished and before is not None and guess.format != "unknown"  # unknown: nothing to count
              and before.change_since(path) is None):  # changed: the report is incomplete anyway
            try:
                for item in scan_tokens(path, toks, format=guess.format, context_length=context_length,
                                        cancel=cancel, time_budget=time_budget, expected_records=st.valid, t0=t0):
                    if isinstance(item, TokenReport):
                        tokens, finished = item.tokens, item.complete
                        checks = replace(item.checks, duplicate_prompts=dup_count,
                                         duplicate_examples=tuple(dup_examples))
                    else:
                        yield replace(item, errors=sum(st.error_counts.values()),
                                      warnings=sum(st.warning_counts.values()))
            except TokdeckError:
                if before.change_since(path) is None:  # (not a stream: only a file is read twice)
                    raise
                finished = False  # deleted or replaced just before the token pass: the report says how
    finally:
        if isinstance(src, Replay):
            src.raw.close()
        for d in spill_dirs:
            shutil.rmtree(d, ignore_errors=True)

    reason = (before.change_since(path) if before is not None else None) or (None if finished else "cancelled")
    yield ScanReport(
        path=path, format=guess, complete=reason is None, records=st.records, valid=st.valid, invalid=st.invalid,
        errors=tuple(LineIssue(ln, k, m, c, ERROR) for ln, k, m, c in st.errors),
        warnings=tuple(LineIssue(ln, k, m, c, WARNING) for ln, k, m, c in
                       sorted(st.warnings, key=lambda w: (w[0] is not None, w[0] or 0))),
        error_counts=dict(st.error_counts), warning_counts=dict(st.warning_counts),
        stats=DatasetStats(
            lines=st.lines, bytes=total_bytes, records=st.records, valid=st.valid, invalid=st.invalid,
            blank_lines=st.blank,
            roles={r: RoleStats(*v) for r, v in sorted(st.roles.items(), key=lambda kv: -kv[1][0])},
            turns=summarize(st.turns), output_tokens=summarize(st.declared)),
        tokens=tokens, checks=checks, elapsed=time.monotonic() - t0, workers=workers, incomplete_reason=reason,
    )


def _consumer_checks(checks: _Checks, tokenizer_id: str, estimated: bool, context_length: int | None,
                     dup_count: int = 0, dup_examples=()) -> ConsumerChecks:
    return ConsumerChecks(
        tokenizer_id=tokenizer_id, estimated=estimated,
        vllm_dropped=checks.dropped if checks.paired else None, vllm_reasons=dict(checks.reasons),
        vllm_lines=tuple(checks.lines), context_length=context_length, over_context=checks.over,
        over_context_lines=tuple(checks.over_lines), duplicate_prompts=dup_count,
        duplicate_examples=tuple(dup_examples))


def scan_tokens(path: str, tokenizers: Sequence, format: str | None = None, context_length: int | None = None,
                cancel=None, time_budget: float = 0.25, registry=None, expected_records: int | None = None,
                t0: float | None = None) -> Iterator[ScanProgress | TokenReport]:
    """The token pass alone (e.g. on demand, after a structure-only ``scan``): yields
    ScanProgress batches and last a TokenReport; ``ScanReport.with_tokens`` merges it.

    ``expected_records`` (the valid count from the structure pass) turns progress into a
    fraction of the file. The checks use ``tokenizers[0]``; their duplicate-prompt fields are
    empty (the structure pass finds those).
    """
    t0 = time.monotonic() if t0 is None else t0
    if is_stream(path):
        raise TokdeckError(f"{path}: a stream is read once: its token statistics come with its scan (scan(tokenizers=...))")
    size = check_readable(path)
    before = FileState.of(path)
    guess = detect_format(path, None if format == "unknown" else format)
    if guess.format == "unknown":
        raise TokdeckError("token statistics need a known format: choose one")
    toks = resolve_tokenizers(tokenizers, registry)
    if not toks:
        raise TokdeckError("token statistics need at least one tokenizer")
    checks = _Checks(guess.format, context_length)
    gen = token_pass(path, guess, toks, checks, size, cancel, time_budget, t0=t0)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            accs, finished = stop.value
            break
        done = int(size * min(1.0, item.records / expected_records)) if expected_records else 0
        yield replace(item, bytes_done=done)
    answer_source = "output_tokens" if guess.format == "prompt" else "tokens"
    reason = (before.change_since(path) if before is not None else None) or (None if finished else "cancelled")
    yield TokenReport(
        tokens={tid: acc.result(answer_source) for tid, acc in accs.items()},
        checks=_consumer_checks(checks, toks[0].id, not toks[0].info.exact, context_length),
        complete=reason is None, elapsed=time.monotonic() - t0, incomplete_reason=reason)


def resolve_tokenizers(tokenizers: Sequence, registry=None) -> list:
    """Loaded Tokenizer objects for ids, model names or Tokenizer objects (duplicates dropped)."""
    if not tokenizers:
        return []
    from ..tokenizers import default_registry, resolve_tokenizer_id

    reg = registry or default_registry()
    out: list = []
    for t in tokenizers:
        tok = reg.get(resolve_tokenizer_id(t, reg)) if isinstance(t, str) else t
        if all(tok.id != o.id for o in out):
            out.append(tok)
    return out


def scan_file(path: str, **kwargs) -> ScanReport:
    """``scan()`` run to the end; the report."""
    result = None
    for item in scan(path, **kwargs):
        result = item
    assert isinstance(result, ScanReport)
    return result
