"""Answer evaluation: ask an agent every question of a dataset through the real runtime (dry
run) and score what a customer would read.

Dataset JSONL, one question a line: `{"id", "question", "lang", "split": "tune"|"held",
"expect": {"price": "650" | ["79", "6900"]} | {"facts": [...]}}` or `"unanswerable": true`.
Scores, per language and overall:

- *price stated*: a price question whose reply states (a number next to a currency) one of the
  expected prices;
- *wrong price*: a price question whose reply states prices, none of them the expected one
  (a stranger's price);
- *unanswerable handled*: an unanswerable question answered with "not in our information" or a
  handoff, and no price;
- *invented prices*: stated prices that appear nowhere in the agent's knowledge;
- *facts stated*: a policy question whose reply contains every expected fact.

`price_list_subset` cuts a big price list down to the asked rows, their near neighbours (rows
whose names start with the same word) and a seeded random fill, so an evaluation can run in
minutes instead of embedding every row.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.ai.answer.grounding import numbers
from core.models.agent import Agent

_PRICE = re.compile(
    r"(\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)\s*(руб\w*\.?|₽|р\.|rub\w*|eur\w*|€|usd|\$|"
    r"euros?|dollars?)|(€|\$)\s*(\d+(?:[.,]\d+)?)", re.I)
SPLITS = ("tune", "held", "all")


def load_dataset(path: str | Path, split: str = "all") -> list[dict[str, Any]]:
    """The questions of `split`; a clear ValueError for a malformed line."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {n}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not str(item.get("question", "")).strip():
            raise ValueError(f"line {n}: an object with a non-empty \"question\" is expected")
        expect = item.get("expect") or {}
        if not item.get("unanswerable") and not (isinstance(expect, dict) and (expect.get("price") or expect.get("facts"))):
            raise ValueError(f"line {n}: give \"expect\" with \"price\" or \"facts\", or \"unanswerable\": true")
        item.setdefault("id", f"line{n}")
        item.setdefault("lang", "?")
        if split == "all" or item.get("split", "held") == split:
            items.append(item)
    return items


def stated_prices(text: str) -> set[str]:
    """Prices a reply states: numbers written next to a currency, as normalised values."""
    found = set()
    for m in _PRICE.finditer(text):
        found |= numbers(m.group(1) or m.group(4) or "")
    return found


def _expected_prices(item: dict[str, Any]) -> set[str]:
    price = item.get("expect", {}).get("price")
    values = price if isinstance(price, list) else [price]
    return {n for v in values if v is not None for n in numbers(str(v))}


def _has_fact(reply: str, fact: str) -> bool:
    wanted = numbers(fact)
    if wanted:
        return wanted <= numbers(reply)
    return fact.lower() in reply.lower()


@dataclass
class Tally:
    price_questions: int = 0
    price_ok: int = 0
    wrong_price: int = 0
    extra_price: int = 0  # the right price and another row's (two close rows shown)
    unanswerable: int = 0
    unknown_ok: int = 0
    invented: int = 0
    policy_questions: int = 0
    facts_ok: int = 0
    ungrounded_removed: int = 0  # replies the grounding check had to edit

    def rates(self) -> dict[str, Any]:
        def rate(a: int, b: int) -> float | None:
            return round(a / b, 3) if b else None
        return {"price_questions": self.price_questions, "price_stated_rate": rate(self.price_ok, self.price_questions),
                "wrong_price_rate": rate(self.wrong_price, self.price_questions), "extra_price": self.extra_price,
                "unanswerable": self.unanswerable, "unanswerable_handled_rate": rate(self.unknown_ok, self.unanswerable),
                "invented_prices": self.invented, "policy_questions": self.policy_questions,
                "facts_stated_rate": rate(self.facts_ok, self.policy_questions),
                "replies_edited_by_checks": self.ungrounded_removed}


@dataclass
class AnswerReport:
    by_language: dict[str, Tally] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overall(self) -> Tally:
        total = Tally()
        for t in self.by_language.values():
            for name in total.__dataclass_fields__:
                setattr(total, name, getattr(total, name) + getattr(t, name))
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.rates(),
                "by_language": {lang: t.rates() for lang, t in sorted(self.by_language.items())},
                "questions": self.rows}


def score(item: dict[str, Any], reply: str, handoff: bool, known: set[str], tally: Tally) -> dict[str, Any]:
    """Score one reply into `tally`; the row says what was found."""
    prices = stated_prices(reply)
    invented = sorted(prices - known)
    tally.invented += len(invented)
    row: dict[str, Any] = {"id": item["id"], "lang": item["lang"], "question": item["question"],
                           "stated_prices": sorted(prices), "invented": invented, "handoff": handoff}
    if item.get("unanswerable"):
        tally.unanswerable += 1
        ok = not prices and (handoff or _says_not_found(reply))
        tally.unknown_ok += ok
        row.update(kind="unanswerable", ok=ok)
    elif item.get("expect", {}).get("price"):
        tally.price_questions += 1
        expected = _expected_prices(item)
        ok = bool(prices & expected)
        tally.price_ok += ok
        tally.wrong_price += bool(prices) and not ok
        tally.extra_price += ok and bool(prices - expected)
        row.update(kind="price", ok=ok, expected=sorted(expected))
    else:
        tally.policy_questions += 1
        ok = all(_has_fact(reply, str(f)) for f in item["expect"].get("facts", []))
        tally.facts_ok += ok
        row.update(kind="policy", ok=ok)
    return row


_NOT_FOUND = re.compile(r"не нашёл|не нашел|could not find|no encontré|não encontrei", re.I)


def _says_not_found(reply: str) -> bool:
    return bool(_NOT_FOUND.search(reply))


async def evaluate_answers(runtime, org_id: str, agent: Agent, questions: list[dict[str, Any]], known_text: str, *,
                           progress: Callable[[str], None] | None = None) -> AnswerReport:
    """Ask every question as a dry-run turn of `agent` and score the replies; `known_text` is
    the agent's whole knowledge (for the invented-price count)."""
    known = numbers(known_text)
    report = AnswerReport()
    for n, item in enumerate(questions, start=1):
        result = await runtime.run_turn(org_id, agent, customer_text=item["question"], conversation=None,
                                        history=[], lead_facts={}, dry_run=True, turn_id=f"eval-{item['id']}")
        tally = report.by_language.setdefault(item["lang"], Tally())
        row = score(item, result.reply_text, result.handoff, known, tally)
        tally.ungrounded_removed += bool(result.checks)
        row.update(reply=result.reply_text, relevance=result.relevance, checks=result.checks)
        report.rows.append(row)
        if progress and n % 10 == 0:
            progress(f"{n}/{len(questions)} questions")
    return report


def format_report(report: AnswerReport) -> str:
    lines = ["lang  price-q  price-stated  wrong-price  extra  unansw.  handled  invented  policy-q  facts"]

    def line(label: str, t: Tally) -> str:
        r = t.rates()
        def pct(v: float | None) -> str:
            return "   -  " if v is None else f"{v * 100:5.1f}%"
        return (f"{label:<5} {t.price_questions:>7}  {pct(r['price_stated_rate']):>12}  {pct(r['wrong_price_rate']):>11}"
                f"  {t.extra_price:>5}  {t.unanswerable:>7}  {pct(r['unanswerable_handled_rate']):>7}  {t.invented:>8}"
                f"  {t.policy_questions:>8}  {pct(r['facts_stated_rate']):>5}")
    for lang, t in sorted(report.by_language.items()):
        lines.append(line(lang, t))
    lines.append(line("all", report.overall))
    misses = [r for r in report.rows if not r["ok"]]
    if misses:
        lines.append("")
        lines.append("missed:")
        lines += [f"  [{r['id']} {r['lang']} {r['kind']}] {r['question']} -> stated {r['stated_prices'] or 'no price'}"
                  f"{' (handoff)' if r['handoff'] else ''}; {r.get('relevance', {}).get('reason', '')}" for r in misses]
    return "\n".join(lines)


def price_list_subset(data: bytes, asked: set[str], *, size: int = 300, neighbours: int = 6, seed: int = 22,
                      key_column: int = 0) -> bytes:
    """A CSV price list cut down to the rows whose `key_column` is in `asked`, up to
    `neighbours` rows per asked row whose name starts with the same word, and a seeded random
    fill up to `size` rows (header kept)."""
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    name_col = next((i for i, h in enumerate(header) if re.search(r"наименован|name|product", h, re.I)), 1)
    chosen = [i for i, r in enumerate(body) if r and r[key_column] in asked]
    first_words = {body[i][name_col].split()[0].lower() for i in chosen if body[i][name_col].split()}
    per_word: dict[str, int] = {}
    for i, r in enumerate(body):
        words = r[name_col].split() if len(r) > name_col else []
        word = words[0].lower() if words else ""
        if word in first_words and i not in chosen and per_word.get(word, 0) < neighbours * 2:
            per_word[word] = per_word.get(word, 0) + 1
            chosen.append(i)
    rest = [i for i in range(len(body)) if i not in set(chosen)]
    random.Random(seed).shuffle(rest)
    chosen += rest[: max(0, size - len(chosen))]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(body[i] for i in sorted(set(chosen)))
    return out.getvalue().encode("utf-8")
