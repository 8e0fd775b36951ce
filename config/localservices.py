"""Where the embedded PostgreSQL and Redis of one checkout live, and on which ports.

Both the service manager (``python -m config.services``) and ``config.settings`` read this
module, so the defaults of ``DATABASE_URL`` and ``REDIS_URL`` always point at the services
that this checkout starts. Ports are derived from the checkout's path so that two clones on
one machine (a developer's tree and a CI clone, say) never fight over a port.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# The embedded server's roles (created by ``python -m config.services start``): the owner
# owns every table and runs migrations and schema changes; web and workers log in as the
# application role, which can read and write rows but never change or drop a table.
OWNER_ROLE = "vigil_owner"
APP_ROLE = "vigil_app"


@dataclass(frozen=True)
class LocalServices:
    run_dir: Path
    pg_port: int
    redis_port: int

    @property
    def database_url(self) -> str:
        """The application role's URL: the default of ``DATABASE_URL``."""
        return f"postgres://{APP_ROLE}@127.0.0.1:{self.pg_port}/vigil"

    @property
    def database_owner_url(self) -> str:
        """The owner role's URL: the default of ``DATABASE_OWNER_URL``."""
        return f"postgres://{OWNER_ROLE}@127.0.0.1:{self.pg_port}/vigil"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def local_services(base_dir: Path = BASE_DIR) -> LocalServices:
    digest = int(hashlib.sha256(str(base_dir).encode()).hexdigest()[:8], 16)
    offset = digest % 900
    pg_port = int(os.environ.get("VIGIL_PG_PORT", 55000 + offset))
    redis_port = int(os.environ.get("VIGIL_REDIS_PORT", 56000 + offset))
    return LocalServices(run_dir=base_dir / ".run", pg_port=pg_port, redis_port=redis_port)
