"""Settings (admins): the project's switches, API keys (secret shown once), members and roles, retention, and the
lists of policies, budgets, SLOs, notification channels and prices with their in-app forms
(:mod:`dashboards.views.config`). Writes call ``controlplane.projects`` and ``controlplane.apikeys``."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane import apikeys, projects
from controlplane.models import ApiKey, Membership, Role, Scope
from controlplane.models.projects import ContentCapture
from dashboards import config_forms, sources
from dashboards.access import access_of, require_role
from dashboards.views.context import page


def _model_rows(module: str, model: str, **filters: Any) -> list[Any] | None:
    found = sources.optional_module(module)
    cls = getattr(found, model, None) if found else None
    return list(cls.objects.filter(**filters)) if cls is not None else None


def _render(request: HttpRequest, new_key: apikeys.IssuedKey | None = None, status: int = 200) -> HttpResponse:
    project = access_of(request).project
    return page(
        request, "dashboards/settings.html", "settings", {}, show_filters=False, status=status, new_key=new_key,
        keys=ApiKey.objects.filter(project=project).order_by("-created_at"),
        members=Membership.objects.filter(project=project).select_related("user").order_by("user__username"),
        roles=Role.choices, scopes=Scope.choices, capture_choices=ContentCapture.choices,
        patterns_text="\n".join(project.pii_extra_patterns or []),
        prices=_model_rows("ingestion.models", "Price"),
        can_edit_prices=config_forms.KINDS["prices"].can_edit(access_of(request).allows,
                                                             getattr(request.user, "is_staff", False)),
        channels=_model_rows("anomaly.models", "NotificationChannel", project=project),
        policies=list(config_forms.KINDS["policies"].rows(project)),
        budgets=list(config_forms.KINDS["budgets"].rows(project)),
        slos=list(config_forms.KINDS["slos"].rows(project)),
        detectors=_model_rows("anomaly.models", "DetectorConfig", project=project),
        detector_page=reverse("dashboards:detectors"),
        retention={"Raw spans and calls": django_settings.KEEL_RAW_TTL_DAYS,
                   "Message content": django_settings.KEEL_CONTENT_TTL_DAYS,
                   "Rollups": django_settings.KEEL_ROLLUP_TTL_DAYS},
    )


def _back(request: HttpRequest) -> HttpResponse:
    return redirect(reverse("dashboards:settings") + f"?project={access_of(request).project.slug}")


def _errors(request: HttpRequest, exc: ValidationError | ValueError) -> None:
    for text in getattr(exc, "messages", [str(exc)]):
        messages.error(request, text)


@require_role(Role.ADMIN)
def settings_page(request: HttpRequest) -> HttpResponse:
    return _render(request)


@require_POST
@require_role(Role.ADMIN)
def issue_key(request: HttpRequest) -> HttpResponse:
    """Renders the page directly (no redirect) so the secret is shown exactly once and never stored."""
    try:
        issued = apikeys.issue_key(access_of(request).project, request.POST.getlist("scopes"),
                                   name=request.POST.get("name", "").strip()[:100],
                                   created_by=request.user if request.user.is_authenticated else None)
    except ValueError as exc:
        _errors(request, exc)
        return _back(request)
    return _render(request, new_key=issued)


@require_POST
@require_role(Role.ADMIN)
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = ApiKey.objects.filter(project=access_of(request).project, pk=key_id).first()
    if key is None:
        raise Http404("No such key in this project.")
    apikeys.revoke_key(key)
    messages.success(request, f"Revoked {key}.")
    return _back(request)


@require_POST
@require_role(Role.ADMIN)
def set_member(request: HttpRequest) -> HttpResponse:
    project = access_of(request).project
    username = request.POST.get("username", "").strip()
    role = request.POST.get("role", "")
    try:
        if request.POST.get("remove"):
            membership = Membership.objects.filter(project=project, user__username=username).first()
            if membership is None:
                raise ValidationError(f"{username} is not a member.")
            projects.remove_member(membership)
            messages.success(request, f"Removed {username}.")
        else:
            existing = Membership.objects.filter(project=project, user__username=username).first()
            if existing is not None:
                projects.change_role(existing, role)
            else:
                projects.add_member(project, username, role)
            messages.success(request, f"{username} is now {Role(role).label}.")
    except (ValidationError, ValueError) as exc:
        _errors(request, exc)
    return _back(request)


@require_POST
@require_role(Role.ADMIN)
def update_project(request: HttpRequest) -> HttpResponse:
    post = request.POST
    patterns = [line.strip() for line in post.get("pii_extra_patterns", "").splitlines() if line.strip()]
    try:
        changes: dict[str, Any] = {
            "name": post.get("name", "").strip(),
            "content_capture": post.get("content_capture", ""),
            "client_cost_wins": post.get("client_cost_wins") == "on",
            "ingest_rate_limit": int(post.get("ingest_rate_limit") or 0),
            "pii_extra_patterns": patterns,
        }
        projects.update_project(access_of(request).project, changes)
    except (ValidationError, ValueError) as exc:
        _errors(request, exc)
    else:
        messages.success(request, "Project settings saved.")
    return _back(request)
