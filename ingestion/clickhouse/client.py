"""The only module that talks to the ClickHouse driver.

``chdb://`` URLs open embedded ClickHouse in this process (one process may own the directory, so we hold a
lock file naming our PID); ``http(s)://`` URLs reach a server or cluster. Everything else in Keel calls
:func:`get_client` or the query objects in :mod:`ingestion.clickhouse.queries`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
import numpy as np
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from django.conf import settings

from controlplane.startup import StartupError


class ClickHouseUnavailable(Exception):
    """ClickHouse could not be reached or refused the operation; callers answer 503 + Retry-After."""


@dataclass(frozen=True)
class ClickHouseTarget:
    embedded: bool
    path: str = ""
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: str = ""
    database: str = "default"
    secure: bool = False


def parse_url(url: str) -> ClickHouseTarget:
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        path = unquote(parsed.path or "")
        if parsed.netloc or not path.startswith("/"):
            raise StartupError(f"KEEL_CLICKHOUSE_URL={url!r} needs an absolute directory, like chdb:///srv/keel/clickhouse.")
        return ClickHouseTarget(embedded=True, path=path)
    if parsed.scheme in {"http", "https"} and parsed.hostname:
        return ClickHouseTarget(
            embedded=False,
            host=parsed.hostname,
            port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
            username=unquote(parsed.username or "default"),
            password=unquote(parsed.password or ""),
            database=(parsed.path or "/").strip("/") or "default",
            secure=parsed.scheme == "https",
        )
    raise StartupError(
        f"KEEL_CLICKHOUSE_URL={url!r} is not understood: use chdb:///absolute/dir for embedded ClickHouse "
        "or http(s)://user:pass@host:8123/database for a server."
    )


class _EmbeddedOwner:
    """Holds the chDB directory lock for this process and serialises access to the one chDB session."""

    def __init__(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.lock_path = Path(path) / "keel.pid.lock"
        self._lock_file = open(self.lock_path, "a+")  # noqa: SIM115 (held for the process lifetime)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            pid = self._lock_file.read().strip() or "unknown"
            self._lock_file.close()
            raise StartupError(
                f"The embedded ClickHouse store {path} is in use by another Keel process (PID {pid}): stop it, "
                "or point KEEL_CLICKHOUSE_URL at another directory or a ClickHouse server."
            ) from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        self.client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        self.mutex = threading.RLock()


class LockedClient:
    """A chDB client shared by every thread of the process, one statement at a time."""

    def __init__(self, owner: _EmbeddedOwner) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._owner.client, name)
        if not callable(target):
            return target

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._owner.mutex:
                return target(*args, **kwargs)

        return locked


_embedded: dict[str, _EmbeddedOwner] = {}
_embedded_lock = threading.Lock()
_local = threading.local()


def target() -> ClickHouseTarget:
    return parse_url(settings.KEEL_CLICKHOUSE_URL)


def get_client() -> Client:
    """A client for the configured ClickHouse, safe to use from any thread."""
    tgt = target()
    if tgt.embedded:
        with _embedded_lock:
            owner = _embedded.get(tgt.path)
            if owner is None:
                owner = _embedded[tgt.path] = _EmbeddedOwner(tgt.path)
        return LockedClient(owner)  # type: ignore[return-value]
    cache: dict[ClickHouseTarget, Client] = getattr(_local, "clients", None) or {}
    _local.clients = cache
    client = cache.get(tgt)
    if client is None:
        try:
            client = clickhouse_connect.get_client(
                host=tgt.host,
                port=tgt.port,
                username=tgt.username,
                password=tgt.password,
                database=tgt.database,
                secure=tgt.secure,
                connect_timeout=5,
                send_receive_timeout=60,
                autogenerate_session_id=False,
            )
        except (OperationalError, DatabaseError, ClickHouseError) as exc:
            raise ClickHouseUnavailable(f"cannot reach ClickHouse at {tgt.host}:{tgt.port}: {exc}") from exc
        cache[tgt] = client
    return client


def numpy_column_blocks(sql: str, parameters: dict[str, Any]) -> Iterator[list[np.ndarray[Any, Any]]]:
    """A query's result streamed block by block (Native format), each block a list of numpy column arrays.

    For wide numeric results (the detectors read ~10M rows × 10 columns) a materialised result costs more than
    the query: chDB grows one output buffer for the whole result (page faults on ~1 GB, then a copy into Python
    bytes). Streamed blocks of ~8k rows reuse the same memory; numeric columns arrive as ``array.array`` and are
    viewed, not copied. Consume the iterator fully: on embedded chDB it holds the session until it ends.
    """
    client = get_client()
    owner = getattr(client, "_owner", None)
    # Embedded: the engine's session is held until the stream ends, so no other query may interleave.
    lock = owner.mutex if isinstance(owner, _EmbeddedOwner) else contextlib.nullcontext()
    with lock, client.query_column_block_stream(sql, parameters=parameters) as stream:
        for block in stream:
            yield [np.asarray(column) for column in block]


def check_startup() -> None:
    """Fail start-up with one sentence when ClickHouse is unreachable or the embedded store is locked."""
    tgt = target()
    logging.disable(logging.WARNING)  # the driver's retry chatter would bury the one sentence below
    try:
        get_client().query("SELECT 1")
    except StartupError:
        raise
    except Exception as exc:
        where = tgt.path if tgt.embedded else f"{tgt.host}:{tgt.port}"
        raise StartupError(
            f"ClickHouse at {where} is not reachable ({type(exc).__name__}): check KEEL_CLICKHOUSE_URL "
            "or start the server."
        ) from None
    finally:
        logging.disable(logging.NOTSET)


def database() -> str:
    tgt = target()
    return "default" if tgt.embedded else tgt.database


def is_unavailable_error(exc: BaseException) -> bool:
    """True for errors that mean 'try again later' rather than 'this request is wrong'."""
    return isinstance(exc, ClickHouseUnavailable | OperationalError) or (
        isinstance(exc, DatabaseError) and any(s in str(exc) for s in ("Connection", "timed out", "TOO_MANY_PARTS"))
    )
