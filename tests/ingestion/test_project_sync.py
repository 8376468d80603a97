"""Project switches reach ClickHouse on every save, and change redaction for that tenant only."""

from __future__ import annotations

import os

import pytest

from django.core.exceptions import ValidationError

from controlplane.models import Project
from ingestion.project_sync import sync_all_projects
from ingestion.redaction import redact_sql, redaction_count_sql

pytestmark = pytest.mark.django_db

TEXT = "Reach me at ann@corp.com about ticket ACME-123456"


def stored(ch, tenant: str) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    row = ch.query(
        f"SELECT {redact_sql('{text:String}', '{tenant:String}')}, "
        f"{redaction_count_sql('{text:String}', '{tenant:String}')}",
        parameters={"text": TEXT, "tenant": tenant},
    ).result_rows[0]
    return row[0], row[1]


def dict_row(ch, tenant: str) -> tuple:  # type: ignore[no-untyped-def, type-arg]
    value = ch.query(
        "SELECT dictGet('keel_project_dict', ('client_cost_wins', 'content_capture', 'extra_pattern'), "
        "tuple({tenant:String}))",
        parameters={"tenant": tenant},
    ).result_rows[0][0]
    return tuple(value.values()) if isinstance(value, dict) else tuple(value)


def new_project(**fields) -> Project:  # type: ignore[no-untyped-def]
    return Project.objects.create(slug=f"p-{os.urandom(4).hex()}", name="p", **fields)


def test_created_project_is_synced_with_defaults(ch) -> None:  # type: ignore[no-untyped-def]
    p = new_project()
    assert dict_row(ch, p.tenant_id) == (1, "redacted", "")
    assert stored(ch, p.tenant_id) == ("Reach me at [EMAIL] about ticket ACME-123456", 1)


def test_switching_capture_mode_affects_only_that_tenant(ch) -> None:  # type: ignore[no-untyped-def]
    a, b = new_project(), new_project()
    a.content_capture = "none"
    a.save()
    assert stored(ch, a.tenant_id) == ("", 0)
    assert stored(ch, b.tenant_id) == ("Reach me at [EMAIL] about ticket ACME-123456", 1)

    a.content_capture = "full"
    a.save()
    assert stored(ch, a.tenant_id) == (TEXT, 0)
    assert stored(ch, b.tenant_id)[0] == "Reach me at [EMAIL] about ticket ACME-123456"

    b.client_cost_wins = False
    b.save(update_fields=["client_cost_wins"])
    assert dict_row(ch, b.tenant_id) == (0, "redacted", "")
    assert dict_row(ch, a.tenant_id) == (1, "full", "")


def test_extra_patterns_become_custom_placeholders(ch) -> None:  # type: ignore[no-untyped-def]
    a, b = new_project(pii_extra_patterns=[r"ACME-\d{6}", r"(?i)project\s+falcon"]), new_project()
    assert stored(ch, a.tenant_id) == ("Reach me at [EMAIL] about ticket [CUSTOM]", 2)
    assert stored(ch, b.tenant_id) == ("Reach me at [EMAIL] about ticket ACME-123456", 1)


def test_invalid_pattern_is_rejected_and_nothing_changes(ch) -> None:  # type: ignore[no-untyped-def]
    p = new_project(pii_extra_patterns=[r"ACME-\d{6}"])
    p.pii_extra_patterns = ["ACME-(\\d+"]
    with pytest.raises(ValidationError) as err:
        p.save()
    assert "pii_extra_patterns" in err.value.message_dict
    assert "not a valid RE2 regular expression" in err.value.message_dict["pii_extra_patterns"][0]
    p.refresh_from_db()
    assert p.pii_extra_patterns == [r"ACME-\d{6}"]
    assert stored(ch, p.tenant_id)[0].endswith("[CUSTOM]")


def test_deleted_project_stops_storing_content(ch) -> None:  # type: ignore[no-untyped-def]
    p = new_project(content_capture="full")
    tenant = p.tenant_id
    p.delete()
    assert stored(ch, tenant) == ("", 0)


def test_sync_all_projects_reconciles(ch) -> None:  # type: ignore[no-untyped-def]
    p = new_project()
    # A change that bypassed signals (queryset update) is repaired by the start-up sync.
    Project.objects.filter(pk=p.pk).update(content_capture="none")
    assert stored(ch, p.tenant_id)[0] != ""
    assert sync_all_projects() >= 1
    assert stored(ch, p.tenant_id) == ("", 0)
