"""Prices: the shipped table of USD per 1M input/output tokens per model (with the day each
price took effect), and costs in integer nano-dollars.

Costs are integers (1 USD = 10^9 nano-dollars) so roll-ups summed with `$inc` and reports summed
in the database stay exact: float sums drift with the order of additions, and a report must
equal the sum of its events to the last digit. The table is a data file read at start-up, never
fetched; a model missing from it is priced by the configured default and flagged `known=False`
so reports can say which figures are guesses.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from core.errors import InvalidInput

NANO_PER_USD = 1_000_000_000
SHIPPED_TABLE = Path(__file__).with_name("data") / "prices.csv"
_COLUMNS = ("model", "provider", "input_usd_per_1m", "output_usd_per_1m", "effective_from")


def usd_to_nano(value: Decimal | float | str | int) -> int:
    return int((Decimal(str(value)) * NANO_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def nano_to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


@dataclass(frozen=True)
class Price:
    model: str
    provider: str
    input_usd_per_1m: Decimal
    output_usd_per_1m: Decimal
    effective_from: str  # YYYY-MM-DD
    known: bool = True

    def cost_nano(self, prompt_tokens: int, completion_tokens: int) -> int:
        # tokens * USD per 1M tokens / 10^6 = USD; * 10^9 = nano-dollars: one factor of 1000, exact in Decimal.
        total = (Decimal(prompt_tokens) * self.input_usd_per_1m + Decimal(completion_tokens) * self.output_usd_per_1m)
        return int((total * 1000).to_integral_value(rounding=ROUND_HALF_UP))


def _decimal(text: str, what: str, line: int) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidInput(f"price table line {line}: {what} {text!r} is not a number") from None
    if value < 0 or not value.is_finite():
        raise InvalidInput(f"price table line {line}: {what} must be a non-negative number")
    return value


class PriceTable:
    """Prices by model, each a history sorted by the day it took effect."""

    def __init__(self, prices: list[Price], default: Price, name: str = "shipped") -> None:
        self.name = name
        self.default = default
        self._by_model: dict[str, list[Price]] = {}
        for price in sorted(prices, key=lambda p: p.effective_from):
            self._by_model.setdefault(price.model, []).append(price)

    @classmethod
    def from_csv(cls, path: Path, *, default_input_usd_per_1m: Decimal | float | str,
                 default_output_usd_per_1m: Decimal | float | str) -> PriceTable:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"price table {path} cannot be read: {exc.strerror or exc}") from None
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(f"price table {path}: missing columns {', '.join(missing)}")
        prices = []
        for line, row in enumerate(reader, start=2):
            model = (row["model"] or "").strip()
            day = (row["effective_from"] or "").strip()
            if not model or len(day) != 10 or day[4] != "-" or day[7] != "-":
                raise InvalidInput(f"price table line {line}: needs a model and effective_from as YYYY-MM-DD")
            prices.append(Price(model=model, provider=(row["provider"] or "").strip(),
                                input_usd_per_1m=_decimal(row["input_usd_per_1m"], "input price", line),
                                output_usd_per_1m=_decimal(row["output_usd_per_1m"], "output price", line),
                                effective_from=day))
        default = Price(model="*", provider="", input_usd_per_1m=Decimal(str(default_input_usd_per_1m)),
                        output_usd_per_1m=Decimal(str(default_output_usd_per_1m)), effective_from="0000-00-00",
                        known=False)
        return cls(prices, default, name=path.name)

    def models(self) -> list[str]:
        return sorted(self._by_model)

    def price(self, model: str, day: str) -> Price:
        """The price in effect on `day` (YYYY-MM-DD); the default (known=False) for a model not
        in the table or a day before its first price."""
        history = self._by_model.get(model)
        if not history:
            return Price(model=model, provider="", input_usd_per_1m=self.default.input_usd_per_1m,
                         output_usd_per_1m=self.default.output_usd_per_1m, effective_from="", known=False)
        current = None
        for price in history:
            if price.effective_from <= day:
                current = price
        return current or Price(model=model, provider=history[0].provider,
                                input_usd_per_1m=self.default.input_usd_per_1m,
                                output_usd_per_1m=self.default.output_usd_per_1m, effective_from="", known=False)

    def cost_nano(self, model: str, day: str, prompt_tokens: int, completion_tokens: int) -> tuple[int, bool]:
        price = self.price(model, day)
        return price.cost_nano(prompt_tokens, completion_tokens), price.known


def drift_ratio(table_nano: int, provider_nano: int) -> float | None:
    """How far the provider's figure is from ours, relative to ours (None when ours is zero)."""
    if table_nano <= 0:
        return None if provider_nano == 0 else float("inf")
    return abs(provider_nano - table_nano) / table_nano
