"""The background-job worker that `bastion serve` runs beside gunicorn (BASTION_EMBEDDED_WORKER).

gunicorn's master starts a small supervisor process once it is ready (``when_ready``, before it forks its
web workers) and stops it when it exits (``on_exit``). The supervisor runs ``python -I -m bastion.cli worker``
with the same environment, so the worker reads the same settings and data directory as the web workers, and
restarts it when it dies, waiting longer after each quick death (1 s, 2 s, ... 60 s). A process of its own,
not a thread of the master: a thread starting processes while the master forks web workers would leak its
pipes into them. Imports nothing from Django.

The worker runs in its own process group, so Ctrl+C on the terminal reaches the supervisor only, which asks
the worker to stop (a running job may finish for STOP_GRACE seconds, then is interrupted) instead of
interrupting it at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

FIRST_DELAY = 1.0
LONGEST_DELAY = 60.0
HEALTHY_AFTER = 60.0  # a worker that lived this long died of something new: restart it after FIRST_DELAY
STOP_GRACE = 10.0
POLL = 0.5


def worker_argv(parent: int) -> list[str]:
    return [sys.executable, "-I", "-m", "bastion.cli", "worker", "--parent", str(parent)]


def say(message: str) -> None:
    print(f"[bastion jobs] {message}", file=sys.stderr, flush=True)


def stop_process(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM (a running job may finish), SIGTERM again after ``grace`` (interrupts it), then SIGKILL."""
    for send, wait in ((process.terminate, grace), (process.terminate, 5.0), (process.kill, 5.0)):
        if process.poll() is not None:
            return
        send()
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Supervisor:
    """Keeps one worker process running until stop() or until its own parent (gunicorn's master) is gone."""

    def __init__(self, argv: Callable[[], list[str]] | None = None, *, parent: int | None = None,
                 first_delay: float = FIRST_DELAY, longest_delay: float = LONGEST_DELAY,
                 stop_grace: float = STOP_GRACE, report: Callable[[str], None] = say) -> None:
        self.argv = argv or (lambda: worker_argv(os.getpid()))
        self.parent = parent
        self.first_delay = first_delay
        self.longest_delay = longest_delay
        self.stop_grace = stop_grace
        self.report = report
        self.starts = 0
        self.delays: list[float] = []
        self.stopping = False

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def _should_stop(self) -> bool:
        if self.parent is not None and os.getppid() != self.parent:
            self.stopping = True
        return self.stopping

    def _sleep(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while not self._should_stop() and time.monotonic() < until:
            time.sleep(min(POLL, max(0.0, until - time.monotonic())))

    def run(self) -> int:
        delay = self.first_delay
        while not self._should_stop():
            started = time.monotonic()
            try:
                process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,  # noqa: S603 (our own interpreter)
                                           start_new_session=True)
            except OSError as exc:  # no memory or processes left (often why the worker died): try again later
                self.report(f"Background-job worker could not be started ({exc}); trying again in {delay:g} s")
                self.delays.append(delay)
                self._sleep(delay)
                delay = min(delay * 2, self.longest_delay)
                continue
            self.starts += 1
            self.report(f"Background-job worker started (pid {process.pid})")
            while process.poll() is None:
                if self._should_stop():
                    stop_process(process, self.stop_grace)
                    self.report(f"Background-job worker stopped (pid {process.pid})")
                    return 0
                time.sleep(POLL)
            if self._should_stop():
                break
            if time.monotonic() - started >= HEALTHY_AFTER:
                delay = self.first_delay
            self.report(f"Background-job worker (pid {process.pid}) exited with {process.returncode}; "
                        f"restarting it in {delay:g} s")
            self.delays.append(delay)
            self._sleep(delay)
            delay = min(delay * 2, self.longest_delay)
        return 0


class EmbeddedWorker:
    """The gunicorn master's handle on the supervisor process: start() in when_ready, stop() in on_exit."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, log: Any = None) -> None:
        argv = [sys.executable, "-I", "-m", "bastion.jobs.embedded", "--parent", str(os.getpid())]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)  # noqa: S603 (our own interpreter)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, STOP_GRACE + 10.0)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bastion.jobs.embedded")
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args()
    supervisor = Supervisor(parent=args.parent)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    # The terminal hanging up makes gunicorn's master reload, not exit, and it starts the supervisor only once: the
    # supervisor must outlive the hang-up, or jobs would stay queued until the server restarts. It still stops
    # with the master (SIGTERM from on_exit, or the master gone).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
