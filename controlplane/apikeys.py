"""Issuing, verifying and revoking project API keys.

Keys are high-entropy random strings, so a plain SHA-256 is a safe verifier and lets the ingest hot path
check a key in microseconds; verified keys are cached briefly so a burst of OTLP requests costs one query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from controlplane.models import ApiKey, Project, Scope

_CACHE_SECONDS = 5.0
_LAST_USED_EVERY = 60.0


@dataclass(frozen=True)
class VerifiedKey:
    key_id: int
    project_id: int
    tenant_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or (Scope.ADMIN in self.scopes and scope != Scope.INGEST)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str  # shown once, never stored


_cache: dict[str, tuple[float, VerifiedKey | None]] = {}
_last_used_written: dict[int, float] = {}
_lock = threading.Lock()


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_key(
    project: Project, scopes: list[str], name: str = "", created_by: AbstractBaseUser | None = None
) -> IssuedKey:
    unknown = set(scopes) - set(Scope.values)
    if not scopes or unknown:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(Scope.values)}; unknown: {sorted(unknown)}")
    prefix = secrets.token_hex(6)
    raw = f"keel_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        project=project,
        name=name,
        prefix=prefix,
        key_hash=_hash(raw),
        scopes=sorted(set(scopes)),
        created_by=created_by if created_by is not None and created_by.pk else None,  # type: ignore[misc]
    )
    return IssuedKey(api_key=key, secret=raw)


def revoke_key(key: ApiKey) -> None:
    with transaction.atomic():
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    clear_cache()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def verify_key(raw: str) -> VerifiedKey | None:
    """Return the key's project and scopes, or None for a malformed, unknown or revoked key."""
    digest = _hash(raw)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(digest)
    if hit is not None and now - hit[0] < _CACHE_SECONDS:
        verified = hit[1]
    else:
        verified = _lookup(raw, digest)
        with _lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[digest] = (now, verified)
    if verified is not None:
        _touch(verified.key_id, now)
    return verified


def _lookup(raw: str, digest: str) -> VerifiedKey | None:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != "keel":
        return None
    key = ApiKey.objects.select_related("project").filter(prefix=parts[1], revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        return None
    return VerifiedKey(key.pk, key.project_id, key.project.tenant_id, frozenset(key.scopes))


def _touch(key_id: int, now: float) -> None:
    with _lock:
        if now - _last_used_written.get(key_id, -_LAST_USED_EVERY) < _LAST_USED_EVERY:
            return
        _last_used_written[key_id] = now
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())


def bearer_token(authorization_header: str) -> str | None:
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
