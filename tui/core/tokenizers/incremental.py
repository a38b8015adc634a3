"""Counting a document incrementally as it is edited.

``IncrementalCounter(tokenizer, specials)`` keeps the document cut into blocks at the safe
cut points of :mod:`tui.core.tokenizers.cuts` with each block's count. On a new version of
the text it finds the changed span (common prefix and suffix with the previous version),
re-cuts only the blocks around it, looks each new block up by content in its cache and
encodes only the blocks it has never seen, in one batch call. A document's count is the sum
of its blocks' counts (proved per rule in ``cuts``), so the result always equals
``tokenizer.count(text, specials)``.

Tokenizers without a cut rule are counted whole (the last text's count is remembered).
Long work checks a ``cancelled()`` callable between batches and returns None when it fires;
blocks counted so far stay cached, so the next call resumes rather than restarts.
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from .base import SpecialPolicy, Tokenizer
from .cuts import cut_positions

#: text encoded per batch call (between cancellation checks)
BATCH_CHARS = 1 << 16


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


def _changed_span(old: str, new: str) -> tuple[int, int]:
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
        self._lock = threading.Lock()
        self._text = ""
        self._blocks: list[str] = []
        self._counts: list[int] = []
        self._starts: list[int] = []
        self._cache: dict[str, int] = {}
        self._whole: tuple[str, int] | None = None
        self.stats: CountStats | None = None

    @property
    def incremental(self) -> bool:
        return self.rule is not None

    def count(self, text: str, cancelled: Callable[[], bool] = _never) -> int | None:
        """The count of ``text`` (equal to ``tokenizer.count(text, specials)``), or None if cancelled."""
        with self._lock:
            if self.rule is None:
                return self._count_whole(text, cancelled)
            return self._count_blocks(text, cancelled)

    # ------------------------------------------------------------------ whole
    def _count_whole(self, text: str, cancelled: Callable[[], bool]) -> int | None:
        if self._whole is not None and self._whole[0] == text:
            n = self._whole[1]
            self.stats = CountStats(n, 1, 0, 0, True)
            return n
        if cancelled():
            return None
        n = self.tokenizer.count_many([text], self.specials)[0]
        self._whole = (text, n)
        self.stats = CountStats(n, 1, 1, len(text), True)
        return n

    # ------------------------------------------------------------------ blocks
    def _split(self, text: str, start: int, end: int) -> list[str]:
        """Blocks of text[start:end], where start and end are cut points (or the text's ends)."""
        if start >= end:
            return []
        cuts = [c for c in cut_positions(text[max(0, start - 2):min(len(text), end + 1)], self.rule,
                                         self._atomic, self._lstrip)]
        offset = max(0, start - 2)
        blocks, prev = [], start
        for c in cuts:
            c += offset
            if start < c < end:
                blocks.append(text[prev:c])
                prev = c
        blocks.append(text[prev:end])
        return blocks

    def _count_blocks(self, text: str, cancelled: Callable[[], bool]) -> int | None:
        old = self._text
        if self._blocks and not (self._atomic or self._lstrip):
            p, s = _changed_span(old, text)
            if p == len(old) == len(text):
                self.stats = CountStats(sum(self._counts), len(self._blocks), 0, 0, False)
                return self.stats.tokens
            starts = self._starts
            # An old cut c stays a cut when the characters it depends on (c-2, c-1, c) are unchanged.
            i = bisect.bisect_left(starts, p - 1) - 1  # last block starting at a cut < p - 1
            i = max(i, 0)
            tail_from = len(old) - s + 2
            j = bisect.bisect_left(starts, tail_from)  # first block starting at a cut >= tail_from
            a = starts[i]
            delta = len(text) - len(old)
            b_new = starts[j] + delta if j < len(starts) else len(text)
            middle = self._split(text, a, b_new)
        else:  # first count, or guards that make cut decisions non-local: cut everything
            i, j = 0, len(self._blocks)
            a, delta = 0, len(text) - len(old)
            middle = self._split(text, 0, len(text)) if text else []
        todo = [blk for blk in dict.fromkeys(middle) if blk not in self._cache]
        encoded_chars = 0
        for batch in _batches(todo, BATCH_CHARS):
            if cancelled():
                return None
            # one block (the usual keystroke): a plain call, no batch machinery (tiktoken's batch
            # call starts a thread pool each time)
            counts = ([self.tokenizer.count(batch[0], self.specials)] if len(batch) == 1
                      else self.tokenizer.count_many(batch, self.specials))
            for blk, n in zip(batch, counts):
                self._cache[blk] = n
            encoded_chars += sum(map(len, batch))
        mid_counts = [self._cache[blk] for blk in middle]
        tail_blocks, tail_counts = self._blocks[j:], self._counts[j:]
        self._blocks = self._blocks[:i] + middle + tail_blocks
        self._counts = self._counts[:i] + mid_counts + tail_counts
        head_starts = self._starts[:i]
        mid_starts = list(itertools.accumulate(map(len, middle[:-1]), initial=a)) if middle else []
        tail_starts = [st + delta for st in self._starts[j:]] if delta else self._starts[j:]
        self._starts = head_starts + mid_starts + tail_starts
        self._text = text
        if len(self._cache) > 2 * len(self._blocks) + 1024:
            self._cache = dict(zip(self._blocks, self._counts))
        total = sum(self._counts)
        self.stats = CountStats(total, len(self._blocks), len(todo), encoded_chars, False)
        return total


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
