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


@dataclass(frozen=True)
class LocalServices:
    run_dir: Path
    pg_port: int
    redis_port: int

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/vigil"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def local_services(base_dir: Path = BASE_DIR) -> LocalServices:
    digest = int(hashlib.sha256(str(base_dir).encode()).hexdigest()[:8], 16)
    offset = digest % 900
    pg_port = int(os.environ.get("VIGIL_PG_PORT", 55000 + offset))
    redis_port = int(os.environ.get("VIGIL_REDIS_PORT", 56000 + offset))
    return LocalServices(run_dir=base_dir / ".run", pg_port=pg_port, redis_port=redis_port)
