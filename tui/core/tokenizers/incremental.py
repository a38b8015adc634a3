"""Counting a document incrementally as it is edited.

``IncrementalCounter(tokenizer, specials)`` counts successive versions of one document. The
document is cut into blocks at every safe cut point of :mod:`tui.core.tokenizers.cuts`, and a
document's count is the sum of its blocks' counts (proved per rule in ``cuts``), so the result
always equals ``tokenizer.count(text, specials)``.

On a new version it needs the changed span: the lengths of a prefix and a suffix the new text
shares with the one it counted last. An :class:`EditLog` gives it for free (the editor knows
what each edit replaced); without one it is found by comparing the texts (about 0.5 ms per
megabyte). Cuts farther than :func:`~tui.core.tokenizers.cuts.context_radius` from the change
stay cuts, so only the blocks between the nearest such cuts are re-cut, looked up by content
and encoded if never seen. Nothing is proportional to the document's size: a keystroke costs
the same in 1 KB as in 1 MB. The state is the text, the total, and the blocks' counts by content
with how often each occurs (so a replaced block's count can be subtracted).

Tokenizers without a cut rule are counted whole (the last text's count is remembered).
Long work checks a ``cancelled()`` callable between batches and returns None when it fires;
blocks encoded so far are kept, so the next call resumes rather than restarts.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from .base import SpecialPolicy, Tokenizer
from .cuts import context_radius, cut_positions, cuts_between

#: text encoded per batch call (between cancellation checks)
BATCH_CHARS = 1 << 16
#: a span of two versions of the same text: everything is a shared prefix
UNCHANGED = (sys.maxsize, sys.maxsize)

Span = tuple[int, int]


@dataclass(frozen=True)
class CountStats:
    """What the last ``count`` call did."""

    tokens: int
    blocks: int  # blocks in the document (1 when counted whole)
    encoded_blocks: int  # blocks that had to be encoded
    encoded_chars: int
    whole: bool  # counted whole (no cut rule)


def _never() -> bool:
    return False


class EditLog:
    """Numbered versions of one document and what changed between consecutive ones.

    ``record(span)`` starts a new version; ``span`` is ``(p, s)``: the new text shares its first
    ``p`` and last ``s`` characters with the previous version (None: unknown, e.g. a new file).
    ``span(since, until)`` is the same for two versions further apart. One thread records, any
    number read.
    """

    KEEP = 4096  # versions remembered; a counter further behind compares texts instead

    def __init__(self, version: int = 0) -> None:
        """``version``: the number before the first ``record`` (a log that starts mid-way)."""
        self.version = version
        self._spans: dict[int, Span | None] = {}

    def record(self, span: Span | None) -> int:
        self.version += 1
        self._spans[self.version] = span
        self._spans.pop(self.version - self.KEEP, None)
        return self.version

    def span(self, since: int, until: int) -> Span | None:
        """A prefix and suffix shared by versions ``since`` and ``until``: the shortest of each
        over the versions in between (shared by every step, so by the two ends)."""
        if not 0 <= until - since <= self.KEEP:
            return None
        p, s = UNCHANGED
        for version in range(since + 1, until + 1):
            step = self._spans.get(version)
            if step is None:
                return None
            p, s = min(p, step[0]), min(s, step[1])
        return p, s


def _changed_span(old: str, new: str) -> Span:
    """(p, s): the longest common prefix and suffix lengths of old and new, p + s <= min length."""
    limit = min(len(old), len(new))
    lo, hi = 0, limit
    while hi - lo > 32:  # binary search on slices: about len(old) characters compared in all
        mid = (lo + hi) // 2
        if old[lo:mid] == new[lo:mid]:
            lo = mid
        else:
            hi = mid
    while lo < limit and old[lo] == new[lo]:
        lo += 1
    p = lo
    lo, hi = 0, limit - p
    lo_o, lo_n = len(old), len(new)
    while hi - lo > 32:
        mid = (lo + hi) // 2
        if old[lo_o - mid:lo_o - lo] == new[lo_n - mid:lo_n - lo]:
            lo = mid
        else:
            hi = mid
    while lo < limit - p and old[lo_o - lo - 1] == new[lo_n - lo - 1]:
        lo += 1
    return p, lo


def _guards(tokenizer: Tokenizer, specials: SpecialPolicy) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Token strings no cut may split (they contain a newline) or precede (they strip left)."""
    hf = getattr(tokenizer, "hf", None)
    atomic: set[str] = set()
    lstrip: set[str] = set()
    if hf is not None:
        for added in hf.get_added_tokens_decoder().values():
            if added.special and specials == "literal":
                continue  # literal: special-token strings are ordinary text
            if "\n" in added.content:
                atomic.add(added.content)
            if added.lstrip:
                lstrip.add(added.content)
    else:
        enc = getattr(tokenizer, "encoding", None)
        if enc is not None and specials == "parse":
            atomic.update(s for s in enc.special_tokens_set if "\n" in s)
    return tuple(sorted(atomic)), tuple(sorted(lstrip))


class IncrementalCounter:
    """One tokenizer's running count of one document. Thread-safe (calls are serialised)."""

    def __init__(self, tokenizer: Tokenizer, specials: SpecialPolicy = "literal"):
        self.tokenizer = tokenizer
        self.specials = specials
        self.rule = tokenizer.cut_rule
        self._atomic, self._lstrip = _guards(tokenizer, specials) if self.rule else ((), ())
        self._radius = context_radius(self._atomic, self._lstrip)
        self._lock = threading.Lock()
        self._text: str | None = None  # the text the state below describes
        self._total = 0
        self._blocks = 0
        self._counts: dict[str, int] = {}  # block text -> tokens: every current block, and spares
        self._refs: dict[str, int] = {}  # block text -> how often it occurs in the current text
        self._whole: tuple[str, int] | None = None
        #: the EditLog version of the text counted last (None: unknown)
        self.version: int | None = None
        self.stats: CountStats | None = None
        self.resyncs = 0  # times a wrong span was caught and the state rebuilt (tests expect 0)

    @property
    def incremental(self) -> bool:
        return self.rule is not None

    def count(self, text: str, cancelled: Callable[[], bool] = _never, *, version: int | None = None,
              edits: EditLog | None = None, max_chars: int | None = None, wait: bool = True) -> int | None:
        """The count of ``text`` (equal to ``tokenizer.count(text, specials)``), or None if not counted.

        ``version``/``edits``: ``text`` is that version in ``edits``, which then says what changed
        since the last count. None is returned when ``cancelled()`` fires, when the edit would
        need more than ``max_chars`` characters re-cut or encoded, or when another call is
        running and ``wait`` is False; the state then still describes the previous text.
        """
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            span = None
            if edits is not None and version is not None and self.version is not None:
                span = edits.span(self.version, version)
            if self.rule is None:
                n = self._count_whole(text, cancelled, max_chars)
            else:
                n = self._count_blocks(text, span, cancelled, max_chars)
            if n is not None:
                self.version = version
            return n
        finally:
            self._lock.release()

    # ------------------------------------------------------------------ whole
    def _count_whole(self, text: str, cancelled: Callable[[], bool], max_chars: int | None) -> int | None:
        if self._whole is not None and self._whole[0] == text:
            n = self._whole[1]
            self.stats = CountStats(n, 1, 0, 0, True)
            return n
        if cancelled() or (max_chars is not None and len(text) > max_chars):
            return None
        n = self.tokenizer.count_many([text], self.specials)[0]
        self._whole = (text, n)
        self.stats = CountStats(n, 1, 1, len(text), True)
        return n

    # ------------------------------------------------------------------ blocks
    def _cuts(self, text: str, lo: int, hi: int) -> list[int]:
        return cuts_between(text, self.rule, lo, hi, self._atomic, self._lstrip)

    def _cut_at_or_before(self, text: str, x: int) -> int:
        """The last cut at or before x, or 0."""
        width = 256
        while x > 0:
            lo = max(0, x - width)
            cuts = self._cuts(text, lo, x + 1)
            if cuts:
                return cuts[-1]
            if lo == 0:
                break
            width *= 8
        return 0

    def _cut_at_or_after(self, text: str, y: int) -> int:
        """The first cut at or after y, or the text's end."""
        width = 256
        while y < len(text):
            hi = min(len(text), y + width)
            cuts = self._cuts(text, y - 1, hi)
            if cuts:
                return cuts[0]
            if hi == len(text):
                break
            width *= 8
        return len(text)

    def _split(self, text: str, start: int, end: int) -> list[str]:
        """The blocks of text[start:end]; start and end are cut points (or the text's ends)."""
        if start >= end:
            return []
        blocks, prev = [], start
        for c in self._cuts(text, start, end):
            blocks.append(text[prev:c])
            prev = c
        blocks.append(text[prev:end])
        return blocks

    def _count_blocks(self, text: str, span: Span | None, cancelled: Callable[[], bool],
                      max_chars: int | None) -> int | None:
        old = self._text
        if old is None:
            if max_chars is not None and len(text) > max_chars:
                return None
            old_blocks, new_blocks = [], self._split(text, 0, len(text))
        else:
            p, s = span if span is not None else _changed_span(old, text)
            p = min(p, len(old), len(text))
            s = min(s, len(old) - p, len(text) - p)
            if p == len(old) == len(text):
                self.stats = CountStats(self._total, self._blocks, 0, 0, False)
                return self._total
            # cuts whose deciding characters all lie in the shared prefix or suffix stay cuts
            a = self._cut_at_or_before(old, p - self._radius)
            b = self._cut_at_or_after(old, len(old) - s + self._radius)
            b_new = b + len(text) - len(old)
            if max_chars is not None and b_new - a > max_chars:
                return None  # decided before cutting a big region only to give up
            old_blocks = self._split(old, a, b)
            new_blocks = self._split(text, a, b_new)
        todo = [blk for blk in dict.fromkeys(new_blocks) if blk not in self._counts]
        if max_chars is not None and sum(map(len, todo)) > max_chars:
            return None
        encoded_chars = 0
        for batch in _batches(todo, BATCH_CHARS):
            if cancelled():
                return None
            # one block (the usual keystroke): a plain call, no batch machinery (tiktoken's batch
            # call starts a thread pool each time)
            counts = ([self.tokenizer.count(batch[0], self.specials)] if len(batch) == 1
                      else self.tokenizer.count_many(batch, self.specials))
            self._counts.update(zip(batch, counts))
            encoded_chars += sum(map(len, batch))
        removed = Counter(old_blocks)
        if any(self._refs.get(blk, 0) < k for blk, k in removed.items()):
            # the span did not describe the edit (a caller's bug): start over from this text
            self.resyncs += 1
            self._text, self._total, self._blocks, self._refs = None, 0, 0, {}
            return self._count_blocks(text, None, cancelled, max_chars)
        refs, counts = self._refs, self._counts
        for blk, k in removed.items():
            self._total -= counts[blk] * k
            left = refs[blk] - k
            if left:
                refs[blk] = left
            else:
                del refs[blk]
        for blk in new_blocks:
            refs[blk] = refs.get(blk, 0) + 1
            self._total += counts[blk]
        self._blocks += len(new_blocks) - len(old_blocks)
        self._text = text
        if len(counts) > 2 * len(refs) + 4096:  # drop counts of blocks no longer in the text
            self._counts = {blk: counts[blk] for blk in refs}
        self.stats = CountStats(self._total, self._blocks, len(todo), encoded_chars, False)
        return self._total


def _batches(blocks: Sequence[str], max_chars: int):
    batch: list[str] = []
    size = 0
    for blk in blocks:
        batch.append(blk)
        size += len(blk)
        if size >= max_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


_NEWLINE = re.compile(r"\n")


def window_bounds(text: str, rule: str | None, center: int, max_chars: int) -> tuple[int, int]:
    """A span of about ``max_chars`` around ``center`` whose ends are cut points.

    With a cut rule the window's tokens are exactly the document's tokens there; without
    one the ends fall after newlines and the edges may differ slightly from the whole text.
    """
    if len(text) <= max_chars:
        return 0, len(text)
    lo = max(0, center - max_chars // 2)
    hi = min(len(text), lo + max_chars)
    lo = max(0, hi - max_chars)

    def cut_at_or_before(pos: int) -> int:
        if pos <= 0:
            return 0
        seg_start = max(0, pos - max_chars)
        seg = text[seg_start:pos + 1]
        cuts = cut_positions(seg, rule) if rule else [m.end() for m in _NEWLINE.finditer(seg)]
        cuts = [seg_start + c for c in cuts if seg_start + c <= pos]
        return cuts[-1] if cuts else seg_start if seg_start == 0 else pos

    start = cut_at_or_before(lo)
    end = cut_at_or_before(hi) if hi < len(text) else len(text)
    if end <= start:
        end = min(len(text), start + max_chars)
    return start, end
