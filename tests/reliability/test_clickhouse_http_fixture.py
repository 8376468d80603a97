"""The ClickHouse HTTP fixture itself (tests/reliability/clickhouse_http.py): the protocol pieces the server-mode
tests rely on, checked through clickhouse-connect and raw HTTP, so a fixture that only looked right fails here."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.reliability.clickhouse_http import ClickHouseHttpProcess

PORTS = (18200, 18249)


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHttpProcess]:
    ch = ClickHouseHttpProcess.in_port_range(tmp_path_factory.mktemp("chhttp") / "data", *PORTS, password="s3cret")
    ch.start()
    yield ch
    ch.kill()


def connect(ch: ClickHouseHttpProcess, **kwargs: object):  # type: ignore[no-untyped-def]
    return clickhouse_connect.get_client(host="127.0.0.1", port=ch.port, username=ch.user, password=ch.password,
                                         autogenerate_session_id=False, **kwargs)


def raw(ch: ClickHouseHttpProcess, params: dict[str, str], body: bytes = b"",
        headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", ch.port, timeout=30)
    conn.request("POST", "/?" + urlencode(params), body=body,
                 headers={"X-ClickHouse-User": ch.user, "X-ClickHouse-Key": ch.password, **(headers or {})})
    return conn.getresponse()


def test_clickhouse_connect_round_trips_types_parameters_settings_and_inserts(
        fixture_server: ClickHouseHttpProcess, ch) -> None:  # type: ignore[no-untyped-def]
    c = connect(fixture_server)
    assert c.server_version == ch.query("SELECT version()").result_rows[0][0]  # the same engine as embedded mode
    c.command("CREATE TABLE IF NOT EXISTS t (id UInt32, s LowCardinality(String), m Map(String, String), "
              "at DateTime64(9), n Nullable(Float64)) ENGINE = MergeTree ORDER BY id")
    rows = [[1, "a", {"k": "v"}, datetime(2026, 1, 2, 3, 4, 5), None], [2, "b", {}, datetime(2026, 1, 3), 1.5]]
    for compress in ("lz4", "zstd", "gzip", False):  # the request body's Content-Encoding (or none)
        connect(fixture_server, compress=compress).insert("t", rows, column_names=["id", "s", "m", "at", "n"])
    got = c.query("SELECT id, s, m, at, n FROM t WHERE id IN {ids:Array(UInt32)} AND s != {no:String} "
                  "ORDER BY id LIMIT 1 BY id", parameters={"ids": [1, 2], "no": "z"}).result_rows
    assert got == [tuple(r) for r in rows]
    assert c.query("SELECT count() FROM t").result_rows == [(8,)]
    # Per-request settings apply to that request only; large parameters travel as a multipart form.
    assert c.query("SELECT getSetting('max_threads')", settings={"max_threads": 1}).result_rows == [(1,)]
    assert c.query("SELECT getSetting('max_threads')").result_rows != [(1,)]
    keys = ",".join(f"k{i}" for i in range(20_000))
    form = connect(fixture_server, form_encode_query_params=True)
    assert form.query("SELECT length(splitByChar(',', {k:String}))", parameters={"k": keys}).result_rows == [(20_000,)]
    summary = c.raw_insert("t", ["id", "s"], insert_block=b"3\tc\n4\td\n", fmt="TabSeparated")
    assert summary.written_rows == 2
    assert c.command("SELECT 1 WHERE 0") == ""  # a result-producing statement with no rows reports its format
    with pytest.raises(DatabaseError) as refused:
        c.query("SELECT * FROM no_such_table")
    assert refused.value.code == 60
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(host="127.0.0.1", port=fixture_server.port, password="wrong")


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_a_large_insert_in_many_compressed_blocks_arrives_whole(fixture_server: ClickHouseHttpProcess,
                                                                 compress: str | bool) -> None:
    """clickhouse-connect sends a large insert as many blocks, each its own lz4/zstd frame: all of them count."""
    c = connect(fixture_server, compress=compress)
    table = f"big_{compress or 'plain'}"
    c.command(f"CREATE TABLE {table} (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
    c.insert(table, [[i, "x" * 20] for i in range(300_000)], column_names=["a", "s"])
    assert c.query(f"SELECT count(), sum(a) FROM {table}").result_rows == [(300_000, 299_999 * 300_000 // 2)]


def test_http_headers_errors_compression_and_ping(fixture_server: ClickHouseHttpProcess) -> None:
    ok = raw(fixture_server, {"query_id": "q-1", "param_n": "3", "max_threads": "1"},
             b"SELECT number FROM numbers({n:UInt8}) FORMAT JSONEachRow")
    assert ok.status == 200
    assert ok.headers["X-ClickHouse-Query-Id"] == "q-1" and ok.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert json.loads(ok.headers["X-ClickHouse-Summary"])["read_rows"] == "3"
    assert [json.loads(line) for line in ok.read().splitlines()] == [{"number": i} for i in range(3)]

    zipped = raw(fixture_server, {"enable_http_compression": "1"}, b"SELECT 42", {"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.read()) == b"42\n"

    ddl = raw(fixture_server, {}, b"CREATE TABLE IF NOT EXISTS h (a UInt8) ENGINE = Memory")
    assert ddl.status == 200 and "X-ClickHouse-Format" not in ddl.headers and ddl.read() == b""
    insert = raw(fixture_server, {"query": "INSERT INTO h FORMAT CSV"}, b"1\n2\n")
    assert insert.status == 200 and json.loads(insert.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    insert.read()

    missing = raw(fixture_server, {}, b"SELECT * FROM nope")
    assert missing.status == 404 and missing.headers["X-ClickHouse-Exception-Code"] == "60"
    assert missing.read().startswith(b"Code: 60. DB::Exception: ")
    bad = raw(fixture_server, {}, b"SELEC 1")
    assert bad.status == 400 and bad.headers["X-ClickHouse-Exception-Code"] == "62"
    bad.read()

    conn = http.client.HTTPConnection("127.0.0.1", fixture_server.port, timeout=10)
    conn.request("GET", "/ping")
    assert conn.getresponse().read() == b"Ok.\n"


def test_data_survives_a_sigkill_and_restart(tmp_path: Path) -> None:
    ch = ClickHouseHttpProcess.in_port_range(tmp_path / "data", *PORTS)
    ch.start()
    try:
        connect(ch).command("CREATE TABLE k (a UInt32) ENGINE = MergeTree ORDER BY a")
        connect(ch).insert("k", [[1], [2], [3]], column_names=["a"])
        ch.kill()
        conn = http.client.HTTPConnection("127.0.0.1", ch.port, timeout=5)
        with pytest.raises(ConnectionRefusedError):
            conn.request("GET", "/ping")
        ch.start()
        assert connect(ch).query("SELECT sum(a) FROM k").result_rows == [(6,)]
    finally:
        ch.kill()
