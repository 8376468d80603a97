"""The one-process embedded runtime behind ``manage.py serve``.

Components that hold data in memory (the ingest writer's batches, caches that must be persisted) register an
``on_shutdown`` callback; the runtime calls every callback once the web server has stopped accepting requests
and in-flight requests have finished, before the process exits.
"""

from controlplane.runtime.shutdown import on_shutdown, run_shutdown_hooks

__all__ = ["on_shutdown", "run_shutdown_hooks"]
