"""tokdeck: an offline dashboard for token counting, endpoint benchmarking and JSONL datasets.

Import nothing heavy here: `tokdeck --help` and the core's import-cleanliness test rely on it.
"""

__version__ = "0.1.0"
