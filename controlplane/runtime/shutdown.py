"""Shutdown hooks: what must happen after the server stops accepting and before the process exits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Hook:
    name: str
    callback: Callable[[], object]
    stage: int


# Stages run in ascending order: producers stop first, then buffers flush, then connections close.
STOP_PRODUCERS = 10
FLUSH = 50
CLOSE = 90

_hooks: dict[str, _Hook] = {}
_lock = threading.Lock()


def on_shutdown(callback: Callable[[], object], name: str | None = None, stage: int = FLUSH) -> Callable[[], object]:
    """Register ``callback`` (idempotent by name) to run once at shutdown; usable as a decorator.

    Use ``stage=FLUSH`` (the default) for anything holding accepted data in memory, e.g. the ingest writer.
    """
    key = name or f"{callback.__module__}.{getattr(callback, '__qualname__', repr(callback))}"
    with _lock:
        _hooks[key] = _Hook(key, callback, stage)
    return callback


def run_shutdown_hooks() -> list[str]:
    """Run and forget every hook (stage order, then registration order); returns the names that failed.

    A failing hook is logged and the rest still run: one broken component must not lose another's data.
    """
    with _lock:
        hooks = sorted(_hooks.values(), key=lambda h: h.stage)
        _hooks.clear()
    failed: list[str] = []
    for hook in hooks:
        started = time.perf_counter()
        try:
            hook.callback()
        except Exception:
            logger.exception("shutdown hook %s failed", hook.name)
            failed.append(hook.name)
        else:
            logger.info("shutdown hook %s done", hook.name, extra={"ms": round((time.perf_counter() - started) * 1e3)})
    return failed
