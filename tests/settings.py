"""Test settings: a throwaway var/ (SQLite + chDB) per test run, then Keel's normal settings."""

from __future__ import annotations

import os
import tempfile

_VAR = tempfile.mkdtemp(prefix="keel-test-")
os.environ["KEEL_VAR_DIR"] = _VAR
# The suite runs on its own embedded store unless KEEL_TEST_CLICKHOUSE_URL points it at a server.
os.environ["KEEL_CLICKHOUSE_URL"] = os.environ.get("KEEL_TEST_CLICKHOUSE_URL", f"chdb://{_VAR}/clickhouse")

from controlplane.settings import *  # noqa: E402

REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "100000/min", "login": "10/min"}}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
