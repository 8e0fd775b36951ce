from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from tenants.management.commands._base import OperatorCommand
from tenants.selectors import tenant_get
from tenants.usage import usage_period, usage_report


class Command(OperatorCommand):
    help = (
        "Usage per tenant, day (UTC) and model: runs, steps, tokens in/out, estimated cost, approvals. "
        "Default period: this month to today."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="a tenant's schema name (default: every tenant)")
        parser.add_argument("--from", dest="day_from", help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="day_to", help="last day, YYYY-MM-DD")
        parser.add_argument("--json", action="store_true", help="one JSON object: rows and totals")

    def handle(self, *args: Any, **opts: Any) -> None:
        day_from, day_to = usage_period(day_from=opts["day_from"], day_to=opts["day_to"])
        tenants = [tenant_get(schema_name=opts["tenant"])] if opts["tenant"] else None
        report = usage_report(tenants=tenants, day_from=day_from, day_to=day_to)
        if opts["json"]:
            self.stdout.write(json.dumps(report))
            return
        header = (
            f"{'TENANT':<20} {'DAY':<10} {'MODEL':<16} {'RUNS':>7} {'STEPS':>8} {'TOKENS IN':>11} {'TOKENS OUT':>11}"
        )
        self.stdout.write(f"{header} {'COST USD':>12} {'APPROVALS':>9}")
        for row in report["rows"]:
            self.stdout.write(
                f"{row['tenant']:<20} {row['day']:<10} {row['model'][:16]:<16} {row['runs']:>7} {row['steps']:>8}"
                f" {row['tokens_in']:>11} {row['tokens_out']:>11} {row['cost_usd']:>12} {row['approvals']:>9}"
            )
        t = report["totals"]
        self.stdout.write(
            f"{'total':<20} {report['from'] + '..' + report['to']:<27} {t['runs']:>7} {t['steps']:>8}"
            f" {t['tokens_in']:>11} {t['tokens_out']:>11} {t['cost_usd']:>12} {t['approvals']:>9}"
        )
