"""Local JSONL datasets of any size: formats, streaming validation, statistics, export, line index.

Public API (no Textual; every result is a frozen dataclass):

    size = check_readable(path)                      # a regular file's size, or TokdeckError (one line)
    guess = detect_format(path)                      # FormatGuess(format, container, how, ...)
    for item in scan(path, tokenizers=["qwen3"], context_length=8192, cancel=event):
        ...                                          # ScanProgress batches, then one ScanReport
                                                     # (path "-", a pipe or a FIFO: read once, as a stream)
    report = scan_file(path)                         # the same, run to the end
    for item in scan_tokens(path, ["qwen3"]): ...    # the token pass alone, on demand: a TokenReport
    report = report.with_tokens(token_report)        # ...merged into a structure-only report
    index = LineIndex.build(path)                    # line start offsets in an array('q')
    index.read_line(12)                              # bytes of physical line 12 (os.pread)
    export(path, out, "openai-chat")                 # ExportResult(converted, skipped, ...)

Formats: see ``formats.FORMATS`` and ``formats`` for the rules; each format's typed record (the
fast path: decoded and validated in C) in ``records``; the parser policy of the other lines in
``parsing``; the two passes (structure, tokens) and their memory bounds in ``scanner``.
"""

from .detect import detect_format
from .export import EXPORT_FORMATS, export
from .formats import FORMATS
from .index import LineIndex
from .model import (ConsumerChecks, DatasetStats, ExportResult, FormatGuess, Histogram, JointHistogram,
                    LineIssue, RoleStats, ScanProgress, ScanReport, Summary, TokenReport, TokenStats)
from .scanner import scan, scan_file, scan_tokens
from .source import check_readable

__all__ = [
    "EXPORT_FORMATS", "FORMATS", "ConsumerChecks", "DatasetStats", "ExportResult", "FormatGuess", "Histogram",
    "JointHistogram", "LineIndex", "LineIssue", "RoleStats", "ScanProgress", "ScanReport", "Summary",
    "TokenReport", "TokenStats", "check_readable", "detect_format", "export", "scan", "scan_file", "scan_tokens",
]
