"""Charts as PNG bytes (matplotlib, no display), for the console's /usage."""

from __future__ import annotations

import io
from typing import Any


def daily_usage_png(daily: list[dict[str, Any]], title: str) -> bytes:
    """Replies as bars and cost (USD) as a line, one point per day. Blocking: run in a thread."""
    # Imported here: matplotlib is heavy and only the processes that draw need it.
    import matplotlib  # noqa: PLC0415 - see above

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415 - after choosing the backend

    fig = Figure(figsize=(8, 4), dpi=100)
    ax = fig.add_subplot()
    days = [row["day"][5:] for row in daily]
    ax.bar(days, [row["replies"] for row in daily], color="#4C72B0", label="replies")
    ax.set_ylabel("replies")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    cost = ax.twinx()
    cost.plot(days, [row["cost_nano"] / 1e9 for row in daily], color="#C44E52", marker="o", markersize=3)
    cost.set_ylabel("cost, USD")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
