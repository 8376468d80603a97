"""Create, edit and delete the project's remediation policies, budgets, notification channels, SLOs and the shared
price list, in the app. What each kind is and how it saves lives in :mod:`dashboards.config_forms`."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.models import Role
from controlplane.routing.services import Actor
from dashboards import config_forms
from dashboards.access import access_of, require_role
from dashboards.views.context import page


def _kind(request: HttpRequest, slug: str) -> config_forms.EditableKind:
    kind = config_forms.KINDS.get(slug)
    if kind is None:
        raise Http404("No such settings form.")
    access = access_of(request)
    if not access.allows(kind.role):
        raise PermissionDenied(f"Editing a {kind.label} needs the {Role(kind.role).label} role; "
                               f"you are {access.role.label}.")
    if kind.staff_only and not getattr(request.user, "is_staff", False):
        raise PermissionDenied("Prices apply to every project: only staff users change them.")
    return kind


def _row(request: HttpRequest, kind: config_forms.EditableKind, pk: int) -> models.Model:
    instance = kind.rows(access_of(request).project).filter(pk=pk).first()
    if instance is None:
        raise Http404(f"No such {kind.label} in this project.")
    return instance


def _back(request: HttpRequest, kind: config_forms.EditableKind) -> HttpResponse:
    return redirect(reverse(kind.back) + f"?project={access_of(request).project.slug}")


def _form(request: HttpRequest, kind: config_forms.EditableKind, instance: models.Model | None,
          values: dict[str, Any], errors: dict[str, list[str]] | None = None, status: int = 200) -> HttpResponse:
    project = access_of(request).project
    fields, loose = config_forms.form_fields(kind, project, values, errors)
    return page(request, "dashboards/settings_form.html", "routes" if kind.slug == "policies" else "settings", {},
                show_filters=False, status=status, kind=kind, instance=instance, fields=fields, form_errors=loose,
                back_url=reverse(kind.back) + f"?project={project.slug}")


def _submit(request: HttpRequest, kind: config_forms.EditableKind, instance: models.Model | None) -> HttpResponse:
    project = access_of(request).project
    data = config_forms.posted_data(kind, project, request.POST, instance)
    serializer, errors = config_forms.validate(kind, project, data, instance)
    if not errors:
        try:
            saved = kind.save(serializer, project, Actor.for_request(request).label)
        except config_forms.FormRejected as exc:
            errors = exc.errors
        else:
            messages.success(request, f"{kind.label.capitalize()} “{saved}” {'saved' if instance else 'created'}.")
            return _back(request, kind)
    values = {**data, **{k: v for k, v in request.POST.items() if k.startswith("config_")}}
    return _form(request, kind, instance, values, errors, status=400)


@require_role(Role.VIEWER)
def config_new(request: HttpRequest, slug: str) -> HttpResponse:
    kind = _kind(request, slug)
    if request.method == "POST":
        return _submit(request, kind, None)
    values = config_forms.initial_values(kind, access_of(request).project, None)
    # Links may prefill a new row (Cost → "add price" for an unpriced model); only known fields, as text.
    names = config_forms.input_names(kind, access_of(request).project)
    values |= {k: v[:200] for k, v in request.GET.items() if k in names}
    return _form(request, kind, None, values)


@require_role(Role.VIEWER)
def config_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    kind = _kind(request, slug)
    instance = _row(request, kind, pk)
    if request.method == "POST":
        return _submit(request, kind, instance)
    return _form(request, kind, instance, config_forms.initial_values(kind, access_of(request).project, instance))


@require_POST
@require_role(Role.VIEWER)
def config_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    kind = _kind(request, slug)
    instance = _row(request, kind, pk)
    name = str(instance)
    kind.delete(instance, access_of(request).project, Actor.for_request(request).label)
    messages.success(request, f"Deleted {kind.label} “{name}”.")
    return _back(request, kind)
