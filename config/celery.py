import os
import select
import time
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("vigil")
# The CELERY_* settings, read from a plain copy (config/celery_settings.py explains why).
app.config_from_object("config.celery_settings:CELERY", namespace="CELERY")
app.autodiscover_tasks()


def _server_hung_up(raw: Any) -> bool:
    """Whether the server ended this idle connection (a terminated backend, a restart).

    Between two statements PostgreSQL speaks only when asked, so anything waiting on the
    socket of an idle connection is its last word: an error followed by the end of the stream.
    Looking costs no round trip."""
    if raw.closed:
        return True
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def db_connections_check(**kwargs: Any) -> None:
    """Close every database connection of this process that cannot serve the next task;
    Django opens a new one at the next query.

    A worker keeps its connection across tasks (CELERY_DB_REUSE_MAX), and Django checks a
    connection's health only around web requests: without this, a worker whose connection
    the server dropped (a database restart) fails every later task. A healthy connection is
    kept, and checking it costs no round trip; only a connection that raised a database error
    or whose server hung up is tested with a query. A connection older than CONN_MAX_AGE is
    replaced, as between web requests."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue
        if conn.errors_occurred or _server_hung_up(conn.connection):
            if not conn.is_usable():
                conn.close()
                continue
            conn.errors_occurred = False
        if conn.close_at is not None and time.monotonic() >= conn.close_at:
            conn.close()


# Before each task (the connection may have died since the last one) and after it (a task that
# failed on a broken connection leaves it to the next only as a closed one).
task_prerun.connect(db_connections_check, dispatch_uid="config.db_connections_check.prerun", weak=False)
task_postrun.connect(db_connections_check, dispatch_uid="config.db_connections_check.postrun", weak=False)
