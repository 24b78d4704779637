"""Numbers for people: the one place that scales exact integers to K/M/G/T (and bytes to KiB/MiB/GiB).

Every other output keeps exact integers; these strings are for table cells and summaries only.
"""

from __future__ import annotations

DECIMAL_UNITS = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))
BINARY_UNITS = ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def scaled(value: int, separator: str = "") -> str:
    """``value`` in the largest decimal unit it reaches, 3 significant digits (``26.7M``); plain below 1,000."""
    for scale, suffix in DECIMAL_UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{separator}{suffix}"
    return f"{value:,}"


def human(value: int) -> str:
    """``1,228,800 (1.23 M)``: exact, with the scaled value from a million up."""
    return f"{value:,} ({scaled(value, ' ')})" if abs(value) >= 10**6 else f"{value:,}"


def compact(value: int) -> str:
    """``26,657,408`` -> ``26.7M``; exact below 10,000."""
    return f"{value:,}" if abs(value) < 10_000 else scaled(value)


def size_text(size: int) -> str:
    """Bytes in binary units: ``1.8 MiB``, ``12.0 KiB``, ``512 B``."""
    for scale, unit in BINARY_UNITS:
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"
