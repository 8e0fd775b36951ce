"""Usage metering: what each tenant used per day (UTC) and model, and what it is estimated to
cost, in one public table (``UsageDay``) so that the operators' view across tenants is one query.

Counters are written by the transactions that do the counted work, as one upsert each: a step
by the step statement itself (agents.statements, in the same round trip), a run by the submit,
an approval by the gate that opens it. So a rolled-back step, submit or gate counts nothing,
and reading usage needs no flush. The upsert comes after the tenant's audit append in each of
those transactions: the audit lock (one per schema) already serializes them, so the usage row
is never waited for, and every transaction takes the two in the same order.

The estimated cost of a call is priced when it is made, from the operators' price table
(``ModelPrice``, cached per process for PRICE_CACHE_SECONDS): a price edit applies from then on
and does not rewrite past days.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from config.connection import connection
from config.errors import VigilError
from governance.actors import Actor
from governance.services import audit_record
from tenants.models import ModelPrice, Tenant, UsageDay

# USD per million tokens (input, output): the seed of the price table, and the price of a model
# the table does not name.
DEFAULT_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "offline": (Decimal("0"), Decimal("0")),
}
DEFAULT_PRICE = (Decimal("1.00"), Decimal("3.00"))
PRICE_CACHE_SECONDS = 30.0
COUNTERS = ("runs", "steps", "tokens_in", "tokens_out", "cost_usd", "approvals")

_prices: tuple[float, dict[str, tuple[Decimal, Decimal]]] | None = None


def prices() -> dict[str, tuple[Decimal, Decimal]]:
    """The price table, read at most every PRICE_CACHE_SECONDS per process."""
    global _prices
    if _prices is None or time.monotonic() - _prices[0] > PRICE_CACHE_SECONDS:
        rows = ModelPrice.objects.values_list("model", "input_per_million", "output_per_million")
        _prices = (time.monotonic(), {model: (price_in, price_out) for model, price_in, price_out in rows})
    return _prices[1]


def prices_forget() -> None:
    """Read the table afresh at the next price (after an operator's edit in this process)."""
    global _prices
    _prices = None


def cost_estimate(*, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    price_in, price_out = prices().get(model) or DEFAULT_PRICES.get(model, DEFAULT_PRICE)
    return (price_in * tokens_in + price_out * tokens_out) / Decimal(1_000_000)


def month_start(day: date) -> date:
    return day.replace(day=1)


def usage_day(now: datetime | None = None) -> date:
    """The day (UTC) usage at ``now`` counts on."""
    return (now or timezone.now()).astimezone(UTC).date()


# The upsert of one (tenant, day, model) row; the tenant is the connection's current schema.
# agents.statements appends the same upsert to its step statement (UPSERT_SQL with a source).
_UPSERT = (
    "INSERT INTO public.tenants_usageday AS u (tenant_id, day, model, runs, steps, tokens_in, tokens_out, cost_usd,"
    " approvals) SELECT (SELECT id FROM public.tenants_tenant WHERE schema_name = current_schema()),"
    " %(usage_day)s, %(usage_model)s, %(usage_runs)s, %(usage_steps)s, %(usage_tokens_in)s, %(usage_tokens_out)s,"
    " %(usage_cost)s, %(usage_approvals)s {source}"
    " ON CONFLICT (tenant_id, day, model) DO UPDATE SET runs = u.runs + excluded.runs,"
    " steps = u.steps + excluded.steps, tokens_in = u.tokens_in + excluded.tokens_in,"
    " tokens_out = u.tokens_out + excluded.tokens_out, cost_usd = u.cost_usd + excluded.cost_usd,"
    " approvals = u.approvals + excluded.approvals"
)


def upsert_sql(*, source: str = "") -> str:
    """The usage upsert, its values selected ``source`` (e.g. "FROM step": only if a row is)."""
    return _UPSERT.format(source=source)


def usage_params(
    *,
    model: str,
    day: date,
    runs: int = 0,
    steps: int = 0,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: Decimal | float | int = 0,
    approvals: int = 0,
) -> dict[str, Any]:
    return {
        "usage_day": day,
        "usage_model": model[:100],
        "usage_runs": runs,
        "usage_steps": steps,
        "usage_tokens_in": tokens_in,
        "usage_tokens_out": tokens_out,
        "usage_cost": cost_usd,
        "usage_approvals": approvals,
    }


def usage_count(*, model: str, now: datetime | None = None, **counts: Any) -> None:
    """Add ``counts`` (runs, steps, tokens_in, tokens_out, cost_usd, approvals) to the current
    tenant's row of today and ``model``, in the caller's transaction. Call it after the
    transaction's audit append (see the module's docstring)."""
    unknown = set(counts) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown usage counters: {', '.join(sorted(unknown))}")
    with connection.cursor() as cursor:
        cursor.execute(upsert_sql(), usage_params(model=model, day=usage_day(now), **counts))


# ------------------------------------------------------------------------- reading usage
@dataclass(frozen=True)
class UsageRow:
    tenant: str  # schema name
    day: date
    model: str
    runs: int
    steps: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    approvals: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "day": self.day.isoformat(),
            "model": self.model,
            "runs": self.runs,
            "steps": self.steps,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": str(self.cost_usd),
            "approvals": self.approvals,
        }


def usage_rows(
    *, tenants: Iterable[Tenant] | None = None, day_from: date | None = None, day_to: date | None = None
) -> list[UsageRow]:
    """Usage rows (``tenants``: all when None), from ``day_from`` to ``day_to`` inclusive, by
    tenant, day and model: one query whatever the number of tenants."""
    query = UsageDay.objects.select_related("tenant").order_by("tenant__schema_name", "day", "model")
    if tenants is not None:
        query = query.filter(tenant__in=list(tenants))
    if day_from is not None:
        query = query.filter(day__gte=day_from)
    if day_to is not None:
        query = query.filter(day__lte=day_to)
    return [
        UsageRow(
            tenant=row.tenant.schema_name,
            day=row.day,
            model=row.model,
            runs=row.runs,
            steps=row.steps,
            tokens_in=row.tokens_in,
            tokens_out=row.tokens_out,
            cost_usd=row.cost_usd,
            approvals=row.approvals,
        )
        for row in query
    ]


def usage_totals(rows: Iterable[UsageRow]) -> dict[str, Any]:
    totals: dict[str, Any] = {name: 0 for name in COUNTERS}
    totals["cost_usd"] = Decimal(0)
    for row in rows:
        for name in COUNTERS:
            totals[name] += getattr(row, name)
    totals["cost_usd"] = str(totals["cost_usd"])
    return totals


def runs_on(*, tenant_id: int, day: date) -> int:
    """Runs the tenant submitted on ``day`` (UTC)."""
    found = UsageDay.objects.filter(tenant_id=tenant_id, day=day).aggregate(n=Sum("runs"))["n"]
    return int(found or 0)


def tokens_in_month(*, tenant_id: int, day: date) -> int:
    """Tokens (in and out) the tenant used in the month (UTC) of ``day``, up to that day."""
    found = UsageDay.objects.filter(tenant_id=tenant_id, day__gte=month_start(day), day__lte=day).aggregate(
        i=Sum("tokens_in"), o=Sum("tokens_out")
    )
    return int(found["i"] or 0) + int(found["o"] or 0)


# ------------------------------------------------------------------------- periods
MAX_PERIOD_DAYS = 366


class UsagePeriodInvalid(VigilError):
    code = "invalid_period"
    status = 400


def usage_period(
    *, day_from: str | date | None, day_to: str | date | None, today: date | None = None
) -> tuple[date, date]:
    """The period asked for, validated: ISO dates (YYYY-MM-DD), ``from`` not after ``to``, at
    most MAX_PERIOD_DAYS long. Defaults: from the first of this month (UTC) to today."""
    today = today or usage_day()
    parsed: dict[str, date] = {}
    for name, value in (("from", day_from), ("to", day_to)):
        if value is None or value == "":
            continue
        if isinstance(value, date):
            parsed[name] = value
            continue
        try:
            parsed[name] = date.fromisoformat(str(value))
        except ValueError:
            raise UsagePeriodInvalid(
                f"{name!r} must be a date as YYYY-MM-DD, got {str(value)[:40]!r}", field=name
            ) from None
    start = parsed.get("from", month_start(parsed.get("to", today)))
    end = parsed.get("to", max(start, today))
    if start > end:
        raise UsagePeriodInvalid(f"'from' ({start}) is after 'to' ({end})", field="from")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise UsagePeriodInvalid(f"a period is at most {MAX_PERIOD_DAYS} days long", field="to")
    return start, end


def usage_report(*, tenants: Iterable[Tenant] | None, day_from: date, day_to: date) -> dict[str, Any]:
    """Rows and totals of a period, as the API, the command and the admin views show them."""
    rows = usage_rows(tenants=tenants, day_from=day_from, day_to=day_to)
    return {
        "from": day_from.isoformat(),
        "to": day_to.isoformat(),
        "rows": [row.as_dict() for row in rows],
        "totals": usage_totals(rows),
    }


# ------------------------------------------------------------------------- the price table
def price_set(*, model: str, input_per_million: Decimal, output_per_million: Decimal, actor: Actor) -> ModelPrice:
    """Create or change a model's price (the operators' admin), audited in the public chain.
    Calls priced from then on use it (each process re-reads within PRICE_CACHE_SECONDS)."""
    if not model or len(model) > 100:
        raise PriceInvalid("a model's name has 1 to 100 characters", field="model")
    for name, value in (("input_per_million", input_per_million), ("output_per_million", output_per_million)):
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            raise PriceInvalid(f"{name} must be a non-negative number", field=name)
    with transaction.atomic():
        price, created = ModelPrice.objects.update_or_create(
            model=model, defaults={"input_per_million": input_per_million, "output_per_million": output_per_million}
        )
        audit_record(
            actor=actor,
            verb="price.created" if created else "price.changed",
            target_type="model_price",
            target_id=model,
            data={"input_per_million": str(input_per_million), "output_per_million": str(output_per_million)},
        )
    prices_forget()
    return price


def price_delete(*, model: str, actor: Actor) -> None:
    with transaction.atomic():
        deleted, _ = ModelPrice.objects.filter(model=model).delete()
        if deleted:
            audit_record(actor=actor, verb="price.deleted", target_type="model_price", target_id=model, data={})
    prices_forget()


class PriceInvalid(VigilError):
    code = "invalid_price"
    status = 400
