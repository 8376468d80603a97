"""Alerts API: list/detail, the lifecycle actions, detector settings, notification channels and silences.

Thin over :mod:`anomaly.alerts`: views resolve the project through ``controlplane.permissions`` (one place), check
the role, validate the input and call one service function. Viewers read alerts, detectors and silences; on-call
and above act on alerts and manage silences; admins change detector settings and notification channels (whose
configs hold secrets, so only admins read them). Errors are ``{"detail": …}``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from anomaly import alerts
from anomaly.models import (
    Alert,
    AlertState,
    AlertTransition,
    ChannelKind,
    Detection,
    DetectorConfig,
    DetectorKind,
    NotificationAttempt,
    NotificationChannel,
    Severity,
    Silence,
)
from anomaly.sweep import configs_for
from controlplane.models import Membership, Role
from controlplane.permissions import HasProjectRole, project_access

# ---------------------------------------------------------------- serializers


class DetectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Detection
        fields = ["id", "detector", "series_key", "metric", "method", "window_start", "window_end", "observed",
                  "expected", "lower", "upper", "score", "p_value", "statistic", "details", "points", "created_at"]


class TransitionSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AlertTransition
        fields = ["id", "action", "from_state", "to_state", "actor", "reason", "at"]

    def get_actor(self, obj: AlertTransition) -> str | None:
        return obj.actor.get_username() if obj.actor_id else None  # type: ignore[union-attr]


class AlertSerializer(serializers.ModelSerializer):
    assignee = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = ["id", "fingerprint", "detector", "series_key", "route", "title", "state", "severity", "assignee",
                  "snoozed_until", "opened_at", "last_seen_at", "resolved_at", "incident", "renotify_minutes"]

    def get_assignee(self, obj: Alert) -> str | None:
        return obj.assignee.get_username() if obj.assignee_id else None  # type: ignore[union-attr]


class AlertDetailSerializer(AlertSerializer):
    detections = DetectionSerializer(many=True, read_only=True)
    transitions = TransitionSerializer(many=True, read_only=True)
    notifications = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "detections", "transitions", "notifications", "actions"]

    def get_actions(self, obj: Alert) -> list[dict[str, Any]]:
        """Remediation actions (rollback / reroute / pause) taken in answer to this alert."""
        return [
            {"id": a.pk, "kind": a.kind, "state": a.state, "route": a.route.name, "actor": a.actor,
             "created_at": a.created_at, "applied_at": a.applied_at}
            for a in obj.routing_actions.select_related("route").order_by("created_at")
        ]

    def get_notifications(self, obj: Alert) -> list[dict[str, Any]]:
        attempts = NotificationAttempt.objects.filter(alert=obj).select_related("channel")
        return [
            {"channel": a.channel.name, "kind": a.channel.kind, "event": a.event, "status": a.status,
             "attempts": a.attempts, "response_code": a.response_code, "error": a.error,
             "next_retry_at": a.next_retry_at, "delivered_at": a.delivered_at}
            for a in attempts
        ]


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class SnoozeSerializer(ReasonSerializer):
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=7 * 24 * 60)
    until = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("minutes" in attrs) == ("until" in attrs):
            raise serializers.ValidationError("give either minutes or until")
        return attrs


class AssignSerializer(ReasonSerializer):
    assignee = serializers.CharField(allow_null=True, help_text="username of a project member, or null")


class DetectorConfigSerializer(serializers.ModelSerializer):
    class Meta:
        model = DetectorConfig
        fields = ["kind", "enabled", "sensitivity", "min_calls", "cooldown_minutes", "renotify_minutes", "params",
                  "updated_at"]
        read_only_fields = ["kind", "updated_at"]

    def validate_sensitivity(self, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise serializers.ValidationError("sensitivity is a number in [0, 1]")
        return value


_REQUIRED_CONFIG: dict[str, tuple[str, ...]] = {
    ChannelKind.WEBHOOK: ("url",),
    ChannelKind.SLACK: ("url",),
    ChannelKind.EMAIL: ("to",),
    ChannelKind.PAGERDUTY: ("routing_key",),
}
_SECRET_KEYS = {"secret", "routing_key"}


class NotificationChannelSerializer(serializers.ModelSerializer):
    class Meta:
        model = NotificationChannel
        fields = ["id", "name", "kind", "config", "enabled", "min_severity", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind") or getattr(self.instance, "kind", None)
        config = attrs.get("config", getattr(self.instance, "config", {}))
        if not isinstance(config, dict):
            raise serializers.ValidationError({"config": "must be an object"})
        missing = [k for k in _REQUIRED_CONFIG.get(str(kind), ()) if not config.get(k)]
        if missing:
            raise serializers.ValidationError({"config": f"{kind} channels need {', '.join(missing)}"})
        for key in ("url", "events_url"):
            if config.get(key) and not str(config[key]).startswith(("http://", "https://")):
                raise serializers.ValidationError({"config": f"{key} must be an http(s) URL"})
        if kind == ChannelKind.EMAIL and not (
            isinstance(config["to"], list) and all(isinstance(x, str) and "@" in x for x in config["to"])
        ):
            raise serializers.ValidationError({"config": "to must be a list of email addresses"})
        return attrs

    def to_representation(self, instance: NotificationChannel) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["config"] = {k: ("••••" + str(v)[-4:] if k in _SECRET_KEYS and v else v)
                          for k, v in instance.config.items()}
        return data


class SilenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Silence
        fields = ["id", "route", "detector", "severity", "starts_at", "ends_at", "is_maintenance", "comment",
                  "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        starts = attrs.get("starts_at", getattr(self.instance, "starts_at", None))
        ends = attrs.get("ends_at", getattr(self.instance, "ends_at", None))
        if starts and ends and ends <= starts:
            raise serializers.ValidationError({"ends_at": "must be after starts_at"})
        return attrs


# ---------------------------------------------------------------- alerts


class AlertCursor(CursorPagination):
    ordering = ("-opened_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


_FILTERS = [
    OpenApiParameter("state", str, enum=AlertState.values), OpenApiParameter("severity", str, enum=Severity.values),
    OpenApiParameter("route", str), OpenApiParameter("detector", str, enum=DetectorKind.values),
    OpenApiParameter("cursor", str), OpenApiParameter("limit", int),
]


class AlertListView(generics.ListAPIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER
    serializer_class = AlertSerializer
    pagination_class = AlertCursor

    def get_queryset(self) -> QuerySet[Alert]:
        qs = Alert.objects.filter(project=project_access(self.request).project).select_related("assignee")
        params = self.request.query_params
        for name, choices in (("state", AlertState.values), ("severity", Severity.values),
                              ("detector", DetectorKind.values)):
            values = [v for v in params.getlist(name) for v in v.split(",") if v]
            bad = [v for v in values if v not in choices]
            if bad:
                raise serializers.ValidationError({name: f"unknown value(s) {', '.join(bad)}"})
            if values:
                qs = qs.filter(**{f"{name}__in": values})
        if params.get("route"):
            if "\x00" in params["route"]:  # PostgreSQL text cannot hold NUL: a 400, not a DataError/500
                raise serializers.ValidationError({"route": "must not contain NUL characters"})
            qs = qs.filter(route=params["route"])
        return qs

    @extend_schema(parameters=_FILTERS, summary="Alerts of the project, newest first (cursor pagination)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


def _alert(request: Request, alert_id: int) -> Alert:
    return get_object_or_404(Alert.objects.select_related("project", "assignee"), pk=alert_id,
                             project=project_access(request).project)


class AlertDetailView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER

    @extend_schema(responses=AlertDetailSerializer, summary="One alert with its evidence, transitions, deliveries")
    def get(self, request: Request, alert_id: int) -> Response:
        return Response(AlertDetailSerializer(_alert(request, alert_id)).data)


class _AlertAction(APIView):
    permission_classes = [HasProjectRole]
    write_role = Role.ONCALL
    body: type[serializers.Serializer] = ReasonSerializer

    def act(self, alert: Alert, actor: Any, data: dict[str, Any]) -> Alert:
        raise NotImplementedError

    def post(self, request: Request, alert_id: int) -> Response:
        alert = _alert(request, alert_id)
        body = self.body(data=request.data)
        body.is_valid(raise_exception=True)
        actor = request.user if getattr(request.user, "is_authenticated", False) else None
        try:
            alert = self.act(alert, actor, dict(body.validated_data))
        except alerts.AlertError as exc:
            return Response({"detail": str(exc)}, status=409)
        return Response(AlertSerializer(alert).data)


class AlertAckView(_AlertAction):
    @extend_schema(request=ReasonSerializer, responses=AlertSerializer, summary="Acknowledge a firing alert")
    def post(self, request: Request, alert_id: int) -> Response:
        return super().post(request, alert_id)

    def act(self, alert: Alert, actor: Any, data: dict[str, Any]) -> Alert:
        return alerts.acknowledge(alert, actor=actor, reason=data["reason"])


class AlertResolveView(_AlertAction):
    @extend_schema(request=ReasonSerializer, responses=AlertSerializer, summary="Resolve an open alert")
    def post(self, request: Request, alert_id: int) -> Response:
        return super().post(request, alert_id)

    def act(self, alert: Alert, actor: Any, data: dict[str, Any]) -> Alert:
        return alerts.resolve(alert, actor=actor, reason=data["reason"])


class AlertSnoozeView(_AlertAction):
    body = SnoozeSerializer

    @extend_schema(request=SnoozeSerializer, responses=AlertSerializer, summary="Silence an open alert for a while")
    def post(self, request: Request, alert_id: int) -> Response:
        return super().post(request, alert_id)

    def act(self, alert: Alert, actor: Any, data: dict[str, Any]) -> Alert:
        until = data.get("until") or timezone.now() + timedelta(minutes=int(data["minutes"]))
        return alerts.snooze(alert, actor=actor, until=until, reason=data["reason"])


class AlertAssignView(_AlertAction):
    body = AssignSerializer

    @extend_schema(request=AssignSerializer, responses=AlertSerializer, summary="Assign an alert to a member")
    def post(self, request: Request, alert_id: int) -> Response:
        return super().post(request, alert_id)

    def act(self, alert: Alert, actor: Any, data: dict[str, Any]) -> Alert:
        assignee = None
        if data.get("assignee"):
            user_model = get_user_model()
            assignee = user_model.objects.filter(**{user_model.USERNAME_FIELD: data["assignee"]}).first()
            if assignee is None or not Membership.objects.filter(user=assignee, project=alert.project).exists():
                raise serializers.ValidationError({"assignee": "not a member of this project"})
        return alerts.assign(alert, actor=actor, assignee=assignee, reason=data["reason"])


# ---------------------------------------------------------------- detector settings


class DetectorConfigListView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER

    @extend_schema(responses=DetectorConfigSerializer(many=True), summary="Every detector's settings")
    def get(self, request: Request) -> Response:
        configs = sorted(configs_for(project_access(request).project).values(), key=lambda c: c.kind)
        return Response(DetectorConfigSerializer(configs, many=True).data)


class DetectorConfigDetailView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER
    write_role = Role.ADMIN

    def _config(self, request: Request, kind: str) -> DetectorConfig:
        configs = configs_for(project_access(request).project)
        if kind not in configs:
            raise serializers.ValidationError({"kind": f"unknown detector {kind!r}"})
        return configs[kind]

    @extend_schema(responses=DetectorConfigSerializer, summary="One detector's settings")
    def get(self, request: Request, kind: str) -> Response:
        return Response(DetectorConfigSerializer(self._config(request, kind)).data)

    @extend_schema(request=DetectorConfigSerializer, responses=DetectorConfigSerializer,
                   summary="Change a detector's settings (admin)")
    def patch(self, request: Request, kind: str) -> Response:
        body = DetectorConfigSerializer(self._config(request, kind), data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return Response(DetectorConfigSerializer(body.save()).data)


# ---------------------------------------------------------------- channels and silences


class _ProjectScopedCrud:
    model: Any

    def get_queryset(self) -> QuerySet[Any]:
        return self.model.objects.filter(project=project_access(self.request).project)  # type: ignore[attr-defined]

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        extra: dict[str, Any] = {"project": project_access(self.request).project}  # type: ignore[attr-defined]
        # API-key callers have no user row; only a signed-in user is recorded as the silence's author.
        if self.model is Silence and getattr(self.request.user, "pk", None):  # type: ignore[attr-defined]
            extra["created_by"] = self.request.user  # type: ignore[attr-defined]
        serializer.save(**extra)


class ChannelListView(_ProjectScopedCrud, generics.ListCreateAPIView):
    permission_classes = [HasProjectRole]
    model = NotificationChannel
    serializer_class = NotificationChannelSerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    pagination_class = None


class ChannelDetailView(_ProjectScopedCrud, generics.RetrieveUpdateDestroyAPIView):
    permission_classes = [HasProjectRole]
    model = NotificationChannel
    serializer_class = NotificationChannelSerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    http_method_names = ["get", "patch", "delete"]


class SilenceListView(_ProjectScopedCrud, generics.ListCreateAPIView):
    permission_classes = [HasProjectRole]
    model = Silence
    serializer_class = SilenceSerializer
    read_role = Role.VIEWER
    write_role = Role.ONCALL
    pagination_class = None


class SilenceDetailView(_ProjectScopedCrud, generics.RetrieveUpdateDestroyAPIView):
    permission_classes = [HasProjectRole]
    model = Silence
    serializer_class = SilenceSerializer
    read_role = Role.VIEWER
    write_role = Role.ONCALL
    http_method_names = ["get", "patch", "delete"]
