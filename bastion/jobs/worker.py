"""The background-job worker: django-tasks-db's worker loop plus Bastion's sweeps, and run_pending for tests.

``bastion worker`` (and the worker ``bastion serve`` starts) calls ``run()``: it marks the jobs of dead
workers as failed, then, while it takes tasks from the queue, a thread sweeps every SWEEP_SECONDS (jobs
whose heartbeat stopped become failed; expired export files are deleted). With a backend other than the
database one, that backend's own worker runs the tasks, and ``bastion worker --sweep-only`` the sweeps.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

from django.conf import settings
from django.db import connections
from django.utils.crypto import get_random_string

from bastion.jobs import services
from bastion.logs import get_logger

log = get_logger("bastion.jobs")

SWEEP_SECONDS = 60
PARENT_CHECK_SECONDS = 2
DATABASE_BACKEND = "django_tasks_db.DatabaseBackend"


def uses_database_queue() -> bool:
    return settings.TASKS["default"]["BACKEND"] == DATABASE_BACKEND


def worker_id() -> str:
    """Unique across the pool, and telling where the worker runs (django-tasks-db keeps it per task)."""
    return f"{socket.gethostname()[:30]}-{os.getpid()}-{get_random_string(8)}"[:64]


def run_pending(max_tasks: int | None = None) -> int:
    """Run the queued tasks now, in this process and thread, with the real database backend; how many ran.

    For tests (of any app): submit a job, call run_pending(), then read the Job row. Unlike the worker loop it
    never closes database connections, so it works inside a test's transaction.
    """
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult
    from django_tasks_db.utils import exclusive_transaction

    worker = Worker(queue_names=["*"], interval=0, batch=True, backend_name="default", startup_delay=False,
                    max_tasks=max_tasks, worker_id="in-process", excluded_queue_names=[])
    ran = 0
    while max_tasks is None or ran < max_tasks:
        ready = DBTaskResult.objects.ready().filter(backend_name="default")
        with exclusive_transaction(ready.db):
            found = ready.get_locked()
            if found is not None:
                found.claim(worker.worker_id)
        if found is None:
            break
        worker.run_task(found)
        ran += 1
    return ran


def _sweep_safely() -> None:
    try:
        services.sweep()
    except Exception:
        log.exception("jobs_sweep_failed")


def _sweeper(stop: threading.Event, parent: int | None) -> None:
    """Sweep every SWEEP_SECONDS; when started by `bastion serve`, stop the worker if the server is gone."""
    last = time.monotonic()
    try:
        while not stop.wait(PARENT_CHECK_SECONDS if parent is not None else SWEEP_SECONDS):
            if parent is not None and os.getppid() != parent:
                log.warning("jobs_worker_orphaned", parent=parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if time.monotonic() - last >= SWEEP_SECONDS:
                last = time.monotonic()
                _sweep_safely()
    finally:
        connections.close_all()


def drop_client_environment() -> list[str]:
    """Remove the database client libraries' variables (PGPASSWORD, PGSERVICEFILE, PGOPTIONS, MYSQL_...) from this
    process's environment; their names.

    The worker opens target connections (imports, exports) as the web workers do, and those must use only what
    their settings say, never the operator's PGPASSWORD sent to a host a manager registered (libpq reads it when the
    connection has no password). `bastion serve` drops them before it starts gunicorn; a worker started on its own
    (`bastion worker`) still has them, so the worker drops them itself.
    """
    from bastion.cli import CLIENT_ENV_PREFIXES

    names = [name for name in os.environ if name.startswith(CLIENT_ENV_PREFIXES)]
    for name in names:
        del os.environ[name]
    return names


def run(*, parent: int | None = None, interval: float = 0.5, sweep_only: bool = False) -> int:
    """Run the worker until SIGTERM/SIGINT (a running job finishes first; a second signal interrupts it)."""
    from django_tasks_db.management.commands.db_worker import Worker

    dropped = drop_client_environment()
    if dropped:
        log.warning("jobs_worker_client_environment_dropped", names=sorted(dropped))
    _sweep_safely()  # jobs left running by a worker that died are failed before anything else runs
    stop = threading.Event()
    threading.Thread(target=_sweeper, args=(stop, parent), name="jobs-sweeper", daemon=True).start()
    try:
        if sweep_only or not uses_database_queue():
            log.info("jobs_sweeper_started", backend=settings.TASKS["default"]["BACKEND"])
            signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
            signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
            while not stop.wait(1):
                pass
            return 0
        worker = Worker(queue_names=["*"], interval=interval, batch=False, backend_name="default",
                        startup_delay=False, max_tasks=None, worker_id=worker_id(), excluded_queue_names=[])
        log.info("jobs_worker_started", worker=worker.worker_id, pid=os.getpid())
        worker.configure_signals()
        worker.run()
        return 0
    finally:
        stop.set()
