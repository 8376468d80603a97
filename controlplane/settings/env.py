"""Typed reading of environment variables: the only place settings touch ``os.environ``."""

from __future__ import annotations

import os
from pathlib import Path

from controlplane.startup import StartupError

__all__ = ["BASE_DIR", "StartupError", "get_bool", "get_int", "get_list", "get_str", "var_dir"]

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def get_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip() or default


def get_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise StartupError(f"{name}={raw!r} is not a boolean: set it to 1/0, true/false, yes/no or on/off.")


def get_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StartupError(f"{name}={raw!r} is not an integer: set it to a whole number.") from None


def get_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def var_dir() -> Path:
    """Where the embedded runtime keeps its state (SQLite, chDB, secret key)."""
    path = Path(get_str("KEEL_VAR_DIR", str(BASE_DIR / "var"))).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
