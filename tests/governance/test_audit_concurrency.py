"""Concurrent appends on real, separate connections.

No ``db`` fixture here: each thread writes through its own connection in its own committed
transactions, so the events stay in acme's chain for the rest of the session (the table is
append-only). Other tests therefore only ever reason relative to the head they read first.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict

from django.db import transaction
from pytest_django import DjangoDbBlocker

from config.connection import connection
from governance.actors import Actor
from governance.models import AuditEvent
from governance.services import audit_record
from governance.verification import audit_chain_verify
from tenants.models import Tenant

from .conftest import chain_head

THREADS = 4
EVENTS_PER_THREAD = 25


def _append_many(tenant: Tenant, worker: int, start_together: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        connection.set_tenant(tenant)
        start_together.wait(timeout=60)
        for n in range(EVENTS_PER_THREAD):
            with transaction.atomic():
                audit_record(
                    actor=Actor.system(f"worker-{worker}"),
                    verb="test.concurrent",
                    target_type="test",
                    target_id=f"{worker}-{n}",
                    data={"worker": worker, "n": n},
                )
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)
        start_together.abort()
    finally:
        connection.close()


def test_concurrent_appends_from_separate_connections_stay_gapless_and_chained(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> None:
    with django_db_blocker.unblock():
        try:
            acme = Tenant.objects.get(schema_name="acme")
            connection.set_tenant(acme)
            start, start_hash = chain_head()
            errors: list[BaseException] = []
            start_together = threading.Barrier(THREADS)
            threads = [
                threading.Thread(target=_append_many, args=(acme, worker, start_together, errors))
                for worker in range(THREADS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=240)
            assert not any(thread.is_alive() for thread in threads), "appends deadlocked"
            assert errors == []

            rows = list(AuditEvent.objects.filter(seq__gt=start).order_by("seq"))
            total = THREADS * EVENTS_PER_THREAD
            assert [row.seq for row in rows] == list(range(start + 1, start + total + 1))
            assert rows[0].prev_hash == start_hash
            assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
            by_worker: dict[int, list[int]] = defaultdict(list)
            for row in rows:
                by_worker[row.data["worker"]].append(row.data["n"])
            assert by_worker == {worker: list(range(EVENTS_PER_THREAD)) for worker in range(THREADS)}

            report = audit_chain_verify()
            assert report.ok
            assert (report.events, report.head_hash) == (start + total, rows[-1].hash)
        finally:
            connection.set_schema_to_public()
