"""Test infrastructure, not product code: ClickHouse's HTTP interface served by the real ClickHouse engine (chDB).

Why it exists: Keel's server mode (``KEEL_CLICKHOUSE_URL=http://…``) talks to ClickHouse through clickhouse-connect's
HTTP client, and the reliability tests need a server that can be killed mid-stream and restarted on the same port
and data directory. No modern ``clickhouse-server`` can be installed on the development machine (Debian ships
18.16, too old for clickhouse-connect and Keel's schema; PyPI and npm have no server; no Docker registry — see
benchmarks/RELIABILITY.md). chDB *is* the ClickHouse engine (same parser, analyzer, MergeTree, materialized views,
dictionaries, formats), so this module puts an HTTP front on it that speaks enough of ClickHouse's HTTP protocol
for clickhouse-connect to work against it unchanged:

* ``POST``/``GET /`` with the query in the body or in the ``query`` URL parameter (both: concatenated with a
  newline, as ClickHouse does), or as multipart form fields (clickhouse-connect's form encoding for large bound
  parameters);
* ``INSERT … FORMAT X`` followed by data in the body (Native, Protobuf, … — the data is written to a temporary file
  and run as ``INSERT … FROM INFILE … FORMAT X``, as clickhouse-connect's own chDB backend does), chunked request
  bodies, ``Content-Encoding`` lz4 (frame) / zstd / gzip / deflate;
* server-side parameter binding (``param_<name>`` URL parameters or form fields for ``{name:Type}`` placeholders),
  ``database``, ``query_id``, ``default_format``, and every other URL parameter applied as a query setting
  (``SET``) on a fresh engine connection, so ``format_schema``, ``insert_deduplication_token``,
  ``wait_end_of_query`` … behave per request;
* the response in the format the query asks for, ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Format`` (only for
  statements that produce a result), ``X-ClickHouse-Summary``, ``X-ClickHouse-Timezone``; response compression when
  ``enable_http_compression`` is on (the request's value, else the engine's default) and the client accepts
  lz4/zstd/gzip/deflate;
* errors as ``Code: N. DB::Exception: … (NAME) (version V)`` with ``X-ClickHouse-Exception-Code: N`` and HTTP 500
  (400 for syntax/parse errors, 404 for unknown tables/databases, 403 for a wrong user or password: a subset of
  ClickHouse's code → status mapping; clickhouse-connect itself reads only the exception-code header and treats
  429/503/504 as retryable);
* ``GET /ping`` → ``Ok.``; HTTP/1.1 keep-alive; user/password checked (Basic auth, ``X-ClickHouse-User``/``-Key``
  headers or ``user``/``password`` parameters).

Faults (test-only, on the path ``/_fixture/fault``, which no ClickHouse has): ``POST /_fixture/fault?action=crash|drop
&when=before|after&table=REGEX&nth=N`` arms a one-shot fault on the N-th following ``INSERT … FORMAT`` into a table
matching REGEX: ``crash`` SIGKILLs the whole process (in-flight requests die, new connections are refused until it
is started again), ``drop`` closes that one connection without an answer and keeps serving; ``before`` fires when
the request has been received and nothing was stored, ``after`` once the engine has stored the insert (stored but
never acknowledged — the case a retry must not store twice).

Not covered: sessions (``session_id`` is refused, Keel does not use them), external data tables, progress headers
while a query runs, ``client_protocol_version`` (ignored: Native output is that of protocol 0, which clickhouse-connect
detects and accepts), the native TCP protocol, clusters and replication, and anything a real server process does
beyond its engine (its own crash recovery, memory limits, server-level settings, users and quotas).

Run ``python -m tests.reliability.clickhouse_http --port P --path DIR``; :class:`ClickHouseHttpProcess` starts it as
a subprocess (which a test can SIGKILL: connection refused) and restarts it on the same port and directory.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import gzip
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[2]

# URL parameters ClickHouse's HTTP handler consumes itself; every other one is a query setting.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "user", "password", "quota_key", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "stacktrace", "default_database",
})
# Result-producing statement kinds (ClickHouse sends X-ClickHouse-Format for these only).
_RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "VALUES"})
_INSERT_WITH_DATA = re.compile(rb"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)[ \t]*(\r?\n)?",
                               re.IGNORECASE | re.DOTALL)
_SETTINGS_TAIL = re.compile(rb"^(?P<target>.*?)\s+SETTINGS\s+(?P<settings>.+)$", re.IGNORECASE | re.DOTALL)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_LEADING_NOISE = re.compile(r"^(\s+|--[^\n]*\n|/\*.*?\*/|\()*", re.DOTALL)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_STATUS_BY_ERROR = {
    "SYNTAX_ERROR": 400, "CANNOT_PARSE_TEXT": 400, "CANNOT_PARSE_QUOTED_STRING": 400, "CANNOT_PARSE_NUMBER": 400,
    "CANNOT_PARSE_DATE": 400, "CANNOT_PARSE_DATETIME": 400, "CANNOT_PARSE_INPUT_ASSERTION_FAILED": 400,
    "BAD_ARGUMENTS": 400, "TYPE_MISMATCH": 400, "UNKNOWN_TABLE": 404, "UNKNOWN_DATABASE": 404,
    "UNKNOWN_SETTING": 404, "UNKNOWN_FUNCTION": 404, "UNKNOWN_IDENTIFIER": 404, "UNKNOWN_FORMAT": 404,
    "AUTHENTICATION_FAILED": 403,
}
_CONTENT_TYPES = {"TabSeparated": "text/tab-separated-values; charset=UTF-8", "TSV": "text/tab-separated-values",
                  "JSON": "application/json; charset=UTF-8", "JSONEachRow": "application/x-ndjson; charset=UTF-8",
                  "CSV": "text/csv; charset=UTF-8; header=absent"}


class QueryFailed(Exception):
    """A ClickHouse exception to send back as the HTTP error response."""

    def __init__(self, message: str, code: int = 1002, name: str = "UNKNOWN_EXCEPTION") -> None:
        super().__init__(message)
        self.code, self.name = code, name

    @classmethod
    def from_engine(cls, exc: Exception) -> QueryFailed:
        text = str(exc).strip()
        text = text[text.find("Code: "):] if "Code: " in text else text
        code = _ERROR_CODE.search(text)
        name = _ERROR_NAME.search(text)
        return cls(text, int(code.group(1)) if code else 1002, name.group(1) if name else "UNKNOWN_EXCEPTION")

    def body(self, version: str) -> bytes:
        text = str(self)
        if not text.startswith("Code: "):
            text = f"Code: {self.code}. DB::Exception: {text}. ({self.name})"
        return f"{text} (version {version})\n".encode()


@dataclass
class ArmedFault:
    """A one-shot fault on the ``nth`` matching insert (see the module docstring)."""

    action: str  # "crash" | "drop"
    when: str  # "before" | "after"
    table: re.Pattern[str]
    nth: int = 1
    seen: int = 0

    def fires(self, target: str) -> bool:
        if not self.table.search(target):
            return False
        self.seen += 1
        return self.seen == self.nth


class DropConnection(Exception):
    """Close the client's connection without an answer."""


@dataclass
class ParsedRequest:
    """What one HTTP request asks the engine to do."""

    sql: bytes
    database: str
    settings: dict[str, str]
    parameters: dict[str, str]
    default_format: str
    query_id: str
    insert_data: bytes | None = None  # data after `INSERT … FORMAT X`, run through a temporary INFILE
    insert_format: str = ""
    insert_target: str = ""
    insert_settings: bytes = b""  # a SETTINGS clause written before FORMAT, moved after FROM INFILE
    response_encodings: list[str] = field(default_factory=list)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":  # clickhouse-connect compresses each block of a large insert as its own frame
        import lz4.frame

        out = []
        while data:
            frames = lz4.frame.LZ4FrameDecompressor()
            out.append(frames.decompress(data))
            data = frames.unused_data
        return b"".join(out)
    if encoding == "zstd":
        from clickhouse_connect.driver.compression import _zstd_decompressor

        out = []
        while data:
            zstd_frames = _zstd_decompressor()
            out.append(zstd_frames.decompress(data))
            data = zstd_frames.unused_data
        return b"".join(out)
    raise QueryFailed(f"Unknown Content-Encoding of HTTP request: {encoding}", 1, "UNKNOWN_EXCEPTION")


def _compress(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data, 1)
    if encoding == "deflate":
        return zlib.compress(data, 1)
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.compress(data))
    from clickhouse_connect.driver.compression import _zstd_compress

    return bytes(_zstd_compress(data))


def _response_encodings() -> list[str]:
    names = ["gzip", "deflate"]
    try:
        import lz4.frame  # noqa: F401

        names.append("lz4")
    except ImportError:
        pass
    from clickhouse_connect.driver.compression import _zstd

    if _zstd is not None:
        names.append("zstd")
    return names


def statement_kind(sql: str) -> str:
    """The first keyword of a statement (after comments and opening parentheses), upper-cased."""
    rest = _LEADING_NOISE.sub("", sql, count=1)
    match = re.match(r"[A-Za-z]+", rest)
    return match.group(0).upper() if match else ""


class ChdbHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], path: str, user: str, password: str) -> None:
        import chdb

        self.data_path = path
        self.user, self.password = user, password
        self.chdb = chdb
        # The first connection opens the engine on the directory; every request gets its own handle on it, so
        # settings and the current database never leak from one request into another.
        self.engine = chdb.connect(path)
        info = self.engine.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self.version, self.timezone = info[0], info[1]
        self.encodings = _response_encodings()
        # Compress responses by the engine's own default (1 since ClickHouse 25), as clickhouse-connect expects
        # when it reads that default from system.settings and then sends only Accept-Encoding.
        self.http_compression = self.engine.query(
            "SELECT value FROM system.settings WHERE name = 'enable_http_compression'", "TabSeparated"
        ).bytes().decode().strip()
        self.fault: ArmedFault | None = None
        self.fault_lock = threading.Lock()
        super().__init__(address, Handler)

    def take_fault(self, target: str, when: str) -> ArmedFault | None:
        """The armed fault if it fires for this insert at this moment (then disarmed)."""
        with self.fault_lock:
            fault = self.fault
            if fault is None or fault.when != when or not fault.fires(target):
                return None
            self.fault = None
            return fault


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections are closed after this long, like ClickHouse's keep_alive_timeout
    server: ChdbHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- HTTP ---------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._send(200, b"", {}, head=True)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", f"timeout={self.timeout}")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query_id = str(uuid.uuid4())
        try:
            body = self._read_body()
            if url.path.rstrip("/") == "/ping":
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if url.path == "/_fixture/fault":
                self._arm(dict(parse_qsl(url.query)))
                return
            if url.path not in ("", "/"):
                raise QueryFailed(f"There is no handle {url.path}", 1002, "UNKNOWN_EXCEPTION")
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            if not params.get("query") and not body and self.command == "GET":
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            self._authenticate(params)
            request = self._parse(params, body)
            query_id = request.query_id or query_id
            self._inject(request, "before")
            result_body, fmt, summary = self._execute(request)
            self._inject(request, "after")
            headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.server.timezone,
                       "X-ClickHouse-Server-Display-Name": "chdb-http-fixture",
                       "X-ClickHouse-Summary": json.dumps(summary)}
            if fmt:
                headers["X-ClickHouse-Format"] = fmt
                headers["Content-Type"] = _CONTENT_TYPES.get(fmt, "application/octet-stream")
            else:
                headers["Content-Type"] = "text/plain; charset=UTF-8"
            if request.settings.get("enable_http_compression", self.server.http_compression) == "1":
                for encoding in request.response_encodings:
                    if encoding in self.server.encodings:
                        result_body = _compress(result_body, encoding)
                        headers["Content-Encoding"] = encoding
                        break
            self._send(200, result_body, headers)
        except QueryFailed as exc:
            self._send(_STATUS_BY_ERROR.get(exc.name, 500), exc.body(self.server.version), {
                "X-ClickHouse-Exception-Code": str(exc.code), "X-ClickHouse-Query-Id": query_id,
                "Content-Type": "text/plain; charset=UTF-8"})
        except DropConnection:
            self.close_connection = True
            self.connection.shutdown(2)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _arm(self, params: dict[str, str]) -> None:
        action, when = params.get("action", "crash"), params.get("when", "after")
        if action not in ("crash", "drop") or when not in ("before", "after"):
            self._send(400, b"action must be crash|drop, when before|after\n", {})
            return
        with self.server.fault_lock:
            self.server.fault = ArmedFault(action, when, re.compile(params.get("table", ".")),
                                           int(params.get("nth", "1")))
        self._send(200, b"armed\n", {})

    def _inject(self, request: ParsedRequest, when: str) -> None:
        if request.insert_data is None:
            return
        fault = self.server.take_fault(request.insert_target, when)
        if fault is None:
            return
        if fault.action == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        raise DropConnection

    def _authenticate(self, params: dict[str, str]) -> None:
        user, password = params.get("user", ""), params.get("password", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        if self.headers.get("X-ClickHouse-User"):
            user, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        if (user or "default") != self.server.user or password != self.server.password:
            raise QueryFailed(f"Code: 516. DB::Exception: {user or 'default'}: Authentication failed: password is "
                              "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
                              516, "AUTHENTICATION_FAILED")

    # --- ClickHouse ---------------------------------------------------------------------------------------------

    def _parse(self, params: dict[str, str], body: bytes) -> ParsedRequest:
        body = _decompress(body, self.headers.get("Content-Encoding", ""))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    raise QueryFailed("External data tables are not supported by this fixture", 48, "NOT_IMPLEMENTED")
                params[str(name)] = part.get_payload(decode=True).decode()
            body = b""
        if params.get("session_id"):
            raise QueryFailed("Sessions are not supported by this fixture", 48, "NOT_IMPLEMENTED")
        if params.get("decompress") == "1" or params.get("compress") == "1":
            raise QueryFailed("ClickHouse's internal compression is not supported by this fixture", 48,
                              "NOT_IMPLEMENTED")
        query = params.get("query", "").encode()
        text = (query + b"\n" + body) if query and body else (query or body)
        if not text.strip():
            raise QueryFailed("Empty query", 62, "SYNTAX_ERROR")
        settings, parameters = {}, {}
        for name, value in params.items():
            if name.startswith("param_"):
                parameters[name[6:]] = value
            elif name not in TRANSPORT_PARAMS:
                if not _SETTING_NAME.match(name):
                    raise QueryFailed(f"Setting {name} is neither a builtin setting nor a valid name", 115,
                                      "UNKNOWN_SETTING")
                settings[name] = value
        accept = [e.strip().split(";")[0] for e in self.headers.get("Accept-Encoding", "").split(",") if e.strip()]
        request = ParsedRequest(sql=text, database=params.get("database", "") or "default", settings=settings,
                                parameters=parameters, default_format=params.get("default_format") or "TabSeparated",
                                query_id=params.get("query_id", ""), response_encodings=accept)
        insert = _INSERT_WITH_DATA.match(text)
        if insert:
            target = insert.group("target")
            tail = _SETTINGS_TAIL.match(target)
            if tail:
                target, request.insert_settings = tail.group("target"), tail.group("settings")
            request.sql = b"INSERT INTO " + target
            request.insert_data = text[insert.end():]
            request.insert_format = insert.group("fmt").decode()
            request.insert_target = target.decode(errors="replace")
        return request

    def _execute(self, request: ParsedRequest) -> tuple[bytes, str, dict[str, str]]:
        try:
            sql = request.sql.decode()
        except UnicodeDecodeError as exc:
            raise QueryFailed(f"Cannot parse query: invalid UTF-8 ({exc})", 62, "SYNTAX_ERROR") from None
        infile = None
        conn = self.server.chdb.connect(self.server.data_path)
        try:
            if request.insert_data is not None:
                with tempfile.NamedTemporaryFile(suffix=".data", delete=False) as tmp:
                    tmp.write(request.insert_data)
                    infile = tmp.name
                clause = f" SETTINGS {request.insert_settings.decode()}" if request.insert_settings else ""
                sql = f"{sql} FROM INFILE {_quote(infile)}{clause} FORMAT {request.insert_format}"
            conn.query(f"USE `{request.database.replace('`', '')}`", "TabSeparated")
            for name, value in request.settings.items():
                conn.query(f"SET {name} = {_quote(value)}", "TabSeparated")
            started = time.perf_counter_ns()
            result = conn.query(sql, request.default_format, params=request.parameters)
            elapsed = time.perf_counter_ns() - started
        except QueryFailed:
            raise
        except Exception as exc:
            raise QueryFailed.from_engine(exc) from None
        finally:
            conn.close()
            if infile:
                os.unlink(infile)
        data = result.bytes() or b""
        kind = statement_kind(sql)
        fmt = ""
        if kind in _RESULT_KINDS:
            trailing = _TRAILING_FORMAT.search(sql)
            fmt = trailing.group(1) if trailing else request.default_format
        if request.insert_data is not None:
            summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                       "written_rows": str(result.rows_read()), "written_bytes": str(result.bytes_read())}
        else:
            summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                       "written_rows": str(result.rows_written()), "written_bytes": str(result.bytes_written())}
        summary.update({"total_rows_to_read": "0", "result_bytes": str(len(data)), "elapsed_ns": str(elapsed)})
        return data, fmt, summary


def _free_port_in(first: int, last: int) -> int:
    import socket

    for port in range(first, last + 1):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


@dataclass
class ClickHouseHttpProcess:
    """The fixture server as a subprocess on a fixed port and data directory, so it can be killed and restarted."""

    path: Path
    port: int
    user: str = "default"
    password: str = ""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @classmethod
    def in_port_range(cls, path: Path, first: int, last: int, **kwargs: Any) -> ClickHouseHttpProcess:
        return cls(path=path, port=_free_port_in(first, last), **kwargs)

    @property
    def log(self) -> Path:
        return self.path.parent / f"{self.path.name}-http.log"

    def url(self, database: str = "default") -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 120) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.clickhouse_http", "--port", str(self.port),
                 "--path", str(self.path), "--user", self.user, "--password", self.password],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the ClickHouse HTTP fixture exited with {self.process.returncode}: "
                                   f"{self.log.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().read() == b"Ok.\n":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the ClickHouse HTTP fixture did not answer /ping in {timeout:.0f} s")

    def arm(self, action: str, when: str, table: str, nth: int = 1) -> None:
        """Arm a one-shot fault on the ``nth`` next insert into a table matching ``table`` (module docstring)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", f"/_fixture/fault?action={action}&when={when}&table={table}&nth={nth}")
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"arming the fault failed: {response.status} {response.read()!r}")

    def wait_exit(self, timeout: float) -> bool:
        """True once the process has exited (a ``crash`` fault fired) within ``timeout`` seconds."""
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL: in-flight requests die with their connections, new ones are refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="chDB data directory")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    args = parser.parse_args(argv)
    Path(args.path).mkdir(parents=True, exist_ok=True)
    server = ChdbHttpServer((args.host, args.port), args.path, args.user, args.password)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"ClickHouse HTTP fixture (chDB {server.version}) on {args.host}:{args.port}, data in {args.path}",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
