"""A real Celery worker and beat running as threads of the web process (embedded runtime only).

The embedded ClickHouse directory can be opened by one process, so the worker cannot be a separate process;
the in-memory broker (``memory://``) is shared by every thread of this process. In production the same tasks
run in ``celery -A controlplane worker`` and ``celery -A controlplane beat`` against Redis.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from celery import Celery
from celery.beat import Service
from celery.worker import WorkController
from celery.worker import state as worker_state

logger = logging.getLogger(__name__)


class EmbeddedCelery:
    """Start/stop a worker thread (thread pool) and a beat thread for ``app``."""

    def __init__(self, app: Celery, state_dir: Path, concurrency: int = 2, beat: bool = True) -> None:
        self.app = app
        self.state_dir = state_dir
        self.concurrency = concurrency
        self.with_beat = beat
        self.worker: WorkController | None = None
        self._worker_thread: threading.Thread | None = None
        self._beat: Service | None = None
        self._beat_thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.app.loader.import_default_modules()  # autodiscovered tasks registered before the worker consumes
        self.worker = WorkController(
            app=self.app,
            hostname="embedded@keel",
            pool="threads",
            concurrency=self.concurrency,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel=logging.WARNING,
            ready_callback=None,
        )
        self._worker_thread = threading.Thread(target=self._run_worker, name="celery-worker", daemon=True)
        self._worker_thread.start()
        ready = threading.Event()
        self._wait_until_consuming(ready, timeout)
        if self.with_beat:
            self._beat = Service(
                self.app, max_interval=1, schedule_filename=str(self.state_dir / "celerybeat-schedule")
            )
            self._beat_thread = threading.Thread(target=self._beat.start, name="celery-beat", daemon=True)
            self._beat_thread.start()

    def _run_worker(self) -> None:
        assert self.worker is not None
        self.app.set_current()
        with contextlib.suppress(SystemExit):  # warm shutdown raises SystemExit(0) inside the worker thread
            self.worker.start()

    def _wait_until_consuming(self, ready: threading.Event, timeout: float) -> None:
        assert self.worker is not None
        step = 0.05
        waited = 0.0
        while waited < timeout:
            consumer = getattr(self.worker, "consumer", None)
            if consumer is not None and getattr(consumer, "task_consumer", None) is not None:
                return
            if self._worker_thread is not None and not self._worker_thread.is_alive():
                raise RuntimeError("the embedded Celery worker stopped during start-up (see the log above)")
            ready.wait(step)
            waited += step
        raise RuntimeError(f"the embedded Celery worker did not start consuming within {timeout:.0f} s")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop beat (no new runs), then let the worker finish the tasks it is running (warm shutdown)."""
        if self._beat is not None and self._beat_thread is not None:
            self._beat.stop(wait=False)
            self._beat_thread.join(timeout=5)
        if self.worker is not None and self._worker_thread is not None and self._worker_thread.is_alive():
            worker_state.should_stop = 0  # checked by the consumer loop: raise WorkerShutdown → warm stop
            self._worker_thread.join(timeout=timeout)
            if self._worker_thread.is_alive():
                logger.warning("the embedded Celery worker did not stop within %.0f s", timeout)
            worker_state.should_stop = None
