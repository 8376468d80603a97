"""The in-app settings forms: remediation policies, budgets, notification channels, SLOs and prices.

Each kind is declared once: which role edits it, which rows the project may see, and which serializer validates
it. The serializers are the ones the API uses (``controlplane.api``, ``anomaly.api``, ``ingestion.api_prices``),
so a form refuses exactly what the API refuses; saves go through the owners' write paths (audited for policies
and budgets, ClickHouse-synced for prices). Fields are rendered from the serializer, so a new model field shows
up in the form without a template change.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers

from controlplane.models import Project, Role

Serializer = serializers.Serializer


class FormRejected(Exception):
    """A save path refused valid-looking input; ``errors`` maps field names (or ``__all__``) to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


@dataclass
class FormField:
    name: str
    label: str
    widget: str  # text | number | select | checkbox | date | password
    value: str = ""
    checked: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    help: str = ""
    required: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExtraInput:
    """An input that is not a serializer field (a channel's config keys): folded into the data by ``to_data``."""

    name: str
    label: str
    help: str = ""
    secret: bool = False


@dataclass(frozen=True)
class EditableKind:
    slug: str
    label: str
    role: Role
    serializer: Callable[[], type[Serializer]]
    rows: Callable[[Project], models.QuerySet[Any]]
    save: Callable[[Serializer, Project, str], models.Model]
    delete: Callable[[models.Model, Project, str], None]
    back: str = "dashboards:settings"
    staff_only: bool = False
    # Choices for relation fields, scoped to the project (never every project's routes).
    choices: Callable[[Project], dict[str, list[tuple[str, str]]]] = lambda _project: {}
    extra_inputs: tuple[ExtraInput, ...] = ()
    to_data: Callable[[dict[str, Any], Any, models.Model | None], dict[str, Any]] | None = None
    initial: Callable[[models.Model], dict[str, Any]] | None = None

    def can_edit(self, role_allows: Callable[[Role], bool], is_staff: bool) -> bool:
        return role_allows(self.role) and (is_staff or not self.staff_only)


# ---------------------------------------------------------------- rendering and parsing


def _widget(f: serializers.Field) -> str:
    if isinstance(f, serializers.BooleanField):
        return "checkbox"
    if isinstance(f, serializers.ChoiceField | serializers.RelatedField):
        return "select"
    if isinstance(f, serializers.IntegerField | serializers.FloatField | serializers.DecimalField):
        return "number"
    if isinstance(f, serializers.DateField):
        return "date"
    return "text"


def _writable(serializer: Serializer) -> list[tuple[str, serializers.Field]]:
    return [(name, f) for name, f in serializer.fields.items()
            if not f.read_only and not isinstance(f, serializers.JSONField | serializers.ModelField)]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def form_fields(kind: EditableKind, project: Project, values: dict[str, Any],
                errors: dict[str, list[str]] | None = None) -> tuple[list[FormField], list[str]]:
    """Fields with their current values and inline errors, plus the errors that belong to no one field."""
    errors = errors or {}
    serializer = kind.serializer()(context={"project": project})
    choices = kind.choices(project)
    fields: list[FormField] = []
    for name, f in _writable(serializer):
        widget = _widget(f)
        options: list[tuple[str, str]] = []
        if widget == "select":
            # Relation fields offer only the project's rows; a serializer's own queryset spans every project.
            options = choices[name] if name in choices else \
                [(str(k), str(v)) for k, v in getattr(f, "choices", {}).items()] if isinstance(
                    f, serializers.ChoiceField) else []
            if getattr(f, "allow_null", False) or getattr(f, "allow_blank", False):
                options = [("", "—"), *[o for o in options if o[0] != ""]]
        value = values.get(name)
        if isinstance(f, serializers.DecimalField) and isinstance(value, str):
            with contextlib.suppress(ArithmeticError):
                value = Decimal(value)  # the API's "25.5000" reads better as 25.5
        fields.append(FormField(
            name=name, label=str(f.label or name), widget=widget, value=_text(value), checked=bool(value),
            choices=options, help=str(f.help_text or ""), required=bool(f.required), errors=errors.get(name, []),
        ))
    for extra in kind.extra_inputs:
        fields.append(FormField(name=extra.name, label=extra.label, widget="password" if extra.secret else "text",
                                value="" if extra.secret else _text(values.get(extra.name)), help=extra.help,
                                errors=errors.get(extra.name, [])))
    known = {f.name for f in fields}
    loose = [m for key, ms in errors.items() if key not in known for m in ms]
    return fields, loose


def input_names(kind: EditableKind, project: Project) -> set[str]:
    """Names of the form's inputs (what a link may prefill)."""
    return {name for name, _f in _writable(kind.serializer()(context={"project": project}))} | {
        extra.name for extra in kind.extra_inputs}


def initial_values(kind: EditableKind, project: Project, instance: models.Model | None) -> dict[str, Any]:
    """What a new form starts with (model defaults) or an edit form shows (the row, as the API represents it)."""
    serializer_class = kind.serializer()
    if instance is not None:
        values = dict(serializer_class(instance, context={"project": project}).data)
        if kind.initial is not None:
            values |= kind.initial(instance)
        return values
    model = serializer_class.Meta.model  # type: ignore[attr-defined]
    values = {}
    for name, _f in _writable(serializer_class(context={"project": project})):
        model_field = next((f for f in model._meta.fields if f.name == name), None)
        if model_field is not None and model_field.has_default():
            values[name] = model_field.get_default()
    return values


def posted_data(kind: EditableKind, project: Project, post: Any, instance: models.Model | None) -> dict[str, Any]:
    """Serializer input from the HTML form: unticked boxes are False, blank nullable inputs are None."""
    data: dict[str, Any] = {}
    for name, f in _writable(kind.serializer()(context={"project": project})):
        if isinstance(f, serializers.BooleanField):
            data[name] = name in post
            continue
        value = post.get(name, "")
        data[name] = None if value == "" and getattr(f, "allow_null", False) else value
    if kind.to_data is not None:
        data = kind.to_data(data, post, instance)
    return data


def validate(kind: EditableKind, project: Project, data: dict[str, Any],
             instance: models.Model | None) -> tuple[Serializer, dict[str, list[str]]]:
    serializer = kind.serializer()(instance, data=data, context={"project": project})
    if serializer.is_valid():
        return serializer, {}
    return serializer, {k: [str(m) for m in (v if isinstance(v, list) else [v])]
                        for k, v in serializer.errors.items()}


def _django_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {k: [str(m) for e in v for m in e.messages] for k, v in exc.error_dict.items()}
    return {"__all__": [str(m) for m in exc.messages]}


# ---------------------------------------------------------------- the kinds


def _policy_serializer() -> type[Serializer]:
    from controlplane.api import PolicySerializer

    return PolicySerializer


def _budget_serializer() -> type[Serializer]:
    from controlplane.api import BudgetSerializer

    return BudgetSerializer


def _route_choices(project: Project) -> list[tuple[str, str]]:
    from controlplane.models import Route

    return [(str(r.pk), str(r)) for r in Route.objects.filter(project=project)]


def _policy_choices(project: Project) -> dict[str, list[tuple[str, str]]]:
    from controlplane.models import Deployment

    deployments = Deployment.objects.filter(route__project=project).select_related("route")
    return {"route": _route_choices(project),
            "reroute_to": [(str(d.pk), f"{d.gateway_id} (on {d.route})") for d in deployments]}


def _audited_save(*, sets_project: bool) -> Callable[[Serializer, Project, str], models.Model]:
    """Save through the routing app's audited write path (a policy belongs to the project; a budget to a route)."""

    def save(serializer: Serializer, project: Project, actor: str) -> models.Model:
        from controlplane.routing import config_changes

        extra = {"project": project} if sets_project and serializer.instance is None else {}
        return config_changes.save(serializer, project, actor, extra=extra)

    return save


def _config_delete(instance: models.Model, project: Project, actor: str) -> None:
    from controlplane.routing import config_changes

    config_changes.delete(instance, project, actor)


def _policies(project: Project) -> models.QuerySet[Any]:
    from controlplane.models import Policy

    return Policy.objects.filter(project=project).select_related("route", "reroute_to")


def _budgets(project: Project) -> models.QuerySet[Any]:
    from controlplane.models import Budget

    return Budget.objects.filter(route__project=project).select_related("route")


def _channel_serializer() -> type[Serializer]:
    from anomaly.api import NotificationChannelSerializer

    return NotificationChannelSerializer


def _channels(project: Project) -> models.QuerySet[Any]:
    from anomaly.models import NotificationChannel

    return NotificationChannel.objects.filter(project=project)


_CHANNEL_INPUTS = (
    ExtraInput("config_url", "URL", "Webhook or Slack incoming-webhook URL (http/https)."),
    ExtraInput("config_secret", "Signing secret", "Webhooks: HMAC secret. Left blank when editing, it is kept.",
               secret=True),
    ExtraInput("config_to", "Email recipients", "Email: addresses separated by commas."),
    ExtraInput("config_routing_key", "PagerDuty routing key", "Left blank when editing, it is kept.", secret=True),
    ExtraInput("config_events_url", "PagerDuty events URL", "Optional; defaults to PagerDuty's Events API v2."),
)
_SECRET_CONFIG = {"secret", "routing_key"}
# The config keys each channel kind uses (what ``anomaly.notifications`` reads); others are not stored.
_CONFIG_KEYS = {"webhook": {"url", "secret"}, "slack": {"url"}, "email": {"to"},
                "pagerduty": {"routing_key", "events_url"}}


def _channel_data(data: dict[str, Any], post: Any, instance: models.Model | None) -> dict[str, Any]:
    """Fold the kind's inputs into ``config``; a blank secret on an edit keeps the stored one."""
    kept = dict(getattr(instance, "config", {}) or {})
    used = _CONFIG_KEYS.get(str(data.get("kind")), set())
    config: dict[str, Any] = {}
    for extra in _CHANNEL_INPUTS:
        key = extra.name.removeprefix("config_")
        if key not in used:
            continue
        value = post.get(extra.name, "").strip()
        if key == "to" and value:
            config["to"] = [a for a in re.split(r"[,\s]+", value) if a]
        elif value:
            config[key] = value
        elif extra.secret and kept.get(key):
            config[key] = kept[key]
    return {**data, "config": config}


def _channel_initial(instance: models.Model) -> dict[str, Any]:
    config = getattr(instance, "config", {}) or {}
    return {f"config_{k}": (", ".join(v) if isinstance(v, list) else v) for k, v in config.items()
            if k not in _SECRET_CONFIG}


def _save_in_project(serializer: Serializer, project: Project, actor: str) -> models.Model:
    extra = {"project": project} if serializer.instance is None else {}
    instance: models.Model = serializer.save(**extra)
    return instance


def _plain_delete(instance: models.Model, project: Project, actor: str) -> None:
    instance.delete()


def _slo_serializer() -> type[Serializer]:
    from dashboards.slo import SloSerializer

    return SloSerializer


def _slos(project: Project) -> models.QuerySet[Any]:
    from dashboards.models import ServiceLevelObjective

    return ServiceLevelObjective.objects.filter(project=project)


def _price_serializer() -> type[Serializer]:
    from ingestion.api_prices import PriceSerializer

    return PriceSerializer


def _prices(project: Project) -> models.QuerySet[Any]:
    from ingestion.models import Price

    return Price.objects.all()  # reference data shared by every project


def _price_save(serializer: Serializer, project: Project, actor: str) -> models.Model:
    from ingestion import prices
    from ingestion.models import Price

    price = serializer.instance or Price()
    for name, value in serializer.validated_data.items():
        setattr(price, name, value)
    try:
        return prices.save_price(price)
    except DjangoValidationError as exc:
        raise FormRejected(_django_errors(exc)) from exc


def _price_delete(instance: models.Model, project: Project, actor: str) -> None:
    from ingestion import prices

    prices.delete_price(instance)  # type: ignore[arg-type]


KINDS: dict[str, EditableKind] = {
    kind.slug: kind for kind in (
        EditableKind("policies", "remediation policy", Role.OPERATOR, _policy_serializer, _policies,
                     _audited_save(sets_project=True), _config_delete, back="dashboards:routes",
                     choices=_policy_choices),
        EditableKind("budgets", "budget", Role.ADMIN, _budget_serializer, _budgets, _audited_save(sets_project=False),
                     _config_delete, choices=lambda project: {"route": _route_choices(project)}),
        EditableKind("channels", "notification channel", Role.ADMIN, _channel_serializer, _channels, _save_in_project,
                     _plain_delete, extra_inputs=_CHANNEL_INPUTS, to_data=_channel_data, initial=_channel_initial),
        EditableKind("slos", "service-level objective", Role.ADMIN, _slo_serializer, _slos, _save_in_project,
                     _plain_delete),
        EditableKind("prices", "price", Role.ADMIN, _price_serializer, _prices, _price_save, _price_delete,
                     staff_only=True),
    )
}
