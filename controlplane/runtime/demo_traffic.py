"""The demo's traffic inside ``serve``: live simulated calls at once, the 7-day history backfill beside them.

Both go through Keel's own OTLP endpoint over HTTP (the same path a real app uses). The backfill runs once per
demo project and resumes after a restart from where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from controlplane.demo import BackfillState
from controlplane.models import Project
from ingestion.simulator import Simulation, SimulationConfig, SimulatorError

log = logging.getLogger("keel.demo")


class DemoTraffic:
    def __init__(
        self, url: str, key: str, project: Project, var: Path, seed: int, rate: float, backfill_days: float,
        stop: threading.Event,
    ) -> None:
        self.config = SimulationConfig(url=url, key=key, seed=seed, rate=rate, backfill_days=backfill_days)
        self.project = project
        self.var = var
        self.stop = stop
        self.simulation = Simulation(self.config, stop=stop, log=log.info)

    def start_when(self, ready: Callable[[], bool]) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._guarded, args=(ready, self._live), name="demo-live", daemon=True),
            threading.Thread(target=self._guarded, args=(ready, self._backfill), name="demo-backfill", daemon=True),
        ]
        for thread in threads:
            thread.start()
        return threads

    def interrupt(self) -> None:
        self.simulation.interrupt()

    def _guarded(self, ready: Callable[[], bool], body: Callable[[], None]) -> None:
        while not ready():
            if self.stop.wait(0.1):
                return
        try:
            body()
        except SimulatorError as exc:
            if not self.stop.is_set():
                log.error("demo traffic stopped: %s", exc)
        except Exception:
            log.exception("demo traffic failed")

    def _live(self) -> None:
        self.simulation.probe()
        self.simulation.live()

    def _backfill(self) -> None:
        if self.config.backfill_days <= 0:
            return
        state = BackfillState.load_or_plan(self.var, self.project, self.config.backfill_days, datetime.now(UTC))
        if state.complete:
            return
        started = time.monotonic()
        sent = 0
        log.info("demo backfill: sending history %s → %s, newest first", state.start.isoformat(),
                 state.filled_from.isoformat())
        while not state.complete and not self.stop.is_set():
            since, until = state.next_chunk()
            sent += self.simulation.backfill(since, until, on_progress=state.progress)
        log.info("demo backfill: %d spans in %.0f s%s", sent, time.monotonic() - started,
                 "" if state.complete else " (interrupted; resumes on next start)")
