"""Byte sizes are shown in decimal units everywhere (`tokdeck inspect` and the Data pane agree)."""

from tui.core.units import human_bytes


def test_decimal_units_and_boundaries():
    assert [human_bytes(n) for n in (0, 999, 1000, 3_582, 999_949, 1_000_000, 5_300_000_000, 12e12)] == [
        "0 B", "999 B", "1.0 KB", "3.6 KB", "999.9 KB", "1.0 MB", "5.3 GB", "12,000.0 GB"]
