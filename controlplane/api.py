"""Routing API: routes, deployments, revisions, actions, remediation policies, budgets, gateway adapters, audit.

Thin over ``controlplane.routing``: views resolve the project (``HasProjectRole``), validate the shape of the input,
call one service function and render the result. Viewers read; operators and admins act; admins configure
gateway adapters. Errors are ``{"detail": …}``; a stale ``expected_version`` is a 409 carrying the current state.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.models import (
    Action,
    AuditEntry,
    Budget,
    Deployment,
    GatewayAdapter,
    GatewaySync,
    Policy,
    Role,
    Route,
    RouteRevision,
)
from controlplane.permissions import HasProjectRole, project_access
from controlplane.routing import audit, config_changes, preview, services, timeline
from controlplane.routing.services import Actor, PushFailed, RoutingError, StaleVersion

IDEMPOTENCY_HEADER = "Idempotency-Key"


# ---------------------------------------------------------------- serializers


class DeploymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Deployment
        fields = ["id", "gateway_id", "provider", "model", "model_version", "healthy", "discovered", "created_at"]
        read_only_fields = ["id", "discovered", "created_at"]


class RevisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = RouteRevision
        fields = ["id", "number", "weights", "paused", "fallbacks", "is_active", "note", "created_by", "created_at"]
        read_only_fields = fields


class RouteSerializer(serializers.ModelSerializer):
    deployments = DeploymentSerializer(many=True, read_only=True)
    active_revision = serializers.SerializerMethodField()

    class Meta:
        model = Route
        fields = ["id", "name", "environment", "version", "discovered", "created_at", "deployments", "active_revision"]
        read_only_fields = ["id", "version", "discovered", "created_at"]

    def get_active_revision(self, route: Route) -> dict[str, Any] | None:
        revision = route.active_revision
        return RevisionSerializer(revision).data if revision else None


class ActionSerializer(serializers.ModelSerializer):
    route = serializers.CharField(source="route.__str__", read_only=True)
    route_id = serializers.IntegerField(read_only=True)
    before_revision = serializers.IntegerField(source="before_revision.number", read_only=True, allow_null=True)
    after_revision = serializers.IntegerField(source="after_revision.number", read_only=True, allow_null=True)

    class Meta:
        model = Action
        fields = ["id", "route", "route_id", "kind", "state", "actor", "reason", "alert_id", "policy_id",
                  "before_revision", "after_revision", "params", "preview", "error", "automatic", "verification",
                  "created_at", "applied_at"]
        read_only_fields = fields


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "event", "route_name", "route_id", "action_id", "alert_id", "summary", "data"]
        read_only_fields = fields


class ActSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    expected_version = serializers.IntegerField(required=False, allow_null=True, default=None)
    alert_id = serializers.IntegerField(required=False, allow_null=True, default=None)


class RollbackSerializer(ActSerializer):
    to_revision = serializers.IntegerField(required=False, allow_null=True, default=None)


class RerouteSerializer(ActSerializer):
    weights = serializers.DictField(child=serializers.JSONField())
    fallbacks = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True, default=None)


class PauseSerializer(ActSerializer):
    deployment = serializers.CharField()


class DeclareRouteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    environment = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = Policy
        fields = ["id", "name", "enabled", "detector", "route", "min_severity", "min_duration_s", "action",
                  "reroute_to", "mode", "cooldown_s", "max_actions_per_hour", "min_calls", "max_staleness_s",
                  "verify_after_s", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        project = self.context["project"]
        route = attrs.get("route") or getattr(self.instance, "route", None)
        if route is not None and route.project_id != project.pk:
            raise ValidationError({"route": "Unknown route."})
        target = attrs.get("reroute_to") or getattr(self.instance, "reroute_to", None)
        if target is not None and target.route.project_id != project.pk:
            raise ValidationError({"reroute_to": "Unknown deployment."})
        if attrs.get("action", getattr(self.instance, "action", None)) == "reroute" and target is None:
            raise ValidationError({"reroute_to": "A reroute policy needs the deployment to reroute to."})
        return attrs


class BudgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Budget
        fields = ["id", "route", "period", "limit_usd", "on_exceed", "enabled", "last_triggered_at"]
        read_only_fields = ["id", "last_triggered_at"]

    def validate_route(self, route: Route) -> Route:
        if route.project_id != self.context["project"].pk:
            raise ValidationError("Unknown route.")
        return route

    def validate_limit_usd(self, value: Any) -> Any:
        if value <= 0:
            raise ValidationError("A budget must be positive.")
        return value


class GatewayAdapterSerializer(serializers.ModelSerializer):
    class Meta:
        model = GatewayAdapter
        fields = ["id", "name", "kind", "url", "secret", "enabled", "timeout_s"]
        read_only_fields = ["id"]
        extra_kwargs = {"secret": {"write_only": True}}


class GatewaySyncSerializer(serializers.ModelSerializer):
    class Meta:
        model = GatewaySync
        fields = ["id", "adapter_id", "action_id", "at", "ok", "calls", "error", "duration_ms"]
        read_only_fields = fields


# ---------------------------------------------------------------- routes


class _Scoped(APIView):
    parser_classes = [JSONParser]  # the API speaks JSON only (and documents only that)
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    def route(self, request: Request, route_id: int) -> Route:
        return get_object_or_404(Route.objects.select_related("project"), pk=route_id,
                                 project=project_access(request).project)


class RouteListView(_Scoped):
    @extend_schema(responses=RouteSerializer(many=True), summary="Routes of the project with their active revision")
    def get(self, request: Request) -> Response:
        routes = Route.objects.filter(project=project_access(request).project).prefetch_related("deployments")
        return Response(RouteSerializer(routes, many=True).data)

    @extend_schema(request=DeclareRouteSerializer, responses={201: RouteSerializer}, summary="Declare a route")
    def post(self, request: Request) -> Response:
        body = DeclareRouteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            route = services.declare_route(project_access(request).project, body.validated_data["name"],
                                           body.validated_data["environment"], actor=Actor.for_request(request))
        except RoutingError as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response(RouteSerializer(route).data, status=201)


class RouteDiscoverView(_Scoped):
    @extend_schema(request=None, responses=DeploymentSerializer(many=True),
                   summary="Discover routes and deployments from the last 7 days of calls")
    def post(self, request: Request) -> Response:
        created = services.discover_from_spans(project_access(request).project)
        return Response(DeploymentSerializer(created, many=True).data)


class RouteDetailView(_Scoped):
    @extend_schema(responses=RouteSerializer, summary="One route")
    def get(self, request: Request, route_id: int) -> Response:
        return Response(RouteSerializer(self.route(request, route_id)).data)


class DeploymentListView(_Scoped):
    @extend_schema(responses=DeploymentSerializer(many=True), summary="Deployments of a route")
    def get(self, request: Request, route_id: int) -> Response:
        return Response(DeploymentSerializer(self.route(request, route_id).deployments.all(), many=True).data)

    @extend_schema(request=DeploymentSerializer, responses={201: DeploymentSerializer},
                   summary="Declare a deployment (its gateway id is LiteLLM's model_info.id)")
    def post(self, request: Request, route_id: int) -> Response:
        route = self.route(request, route_id)
        body = DeploymentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            deployment = services.declare_deployment(
                route, data["gateway_id"], actor=Actor.for_request(request), provider=data.get("provider", ""),
                model=data.get("model", ""), model_version=data.get("model_version", ""))
        except RoutingError as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response(DeploymentSerializer(deployment).data, status=201)


class DeploymentHealthSerializer(serializers.Serializer):
    healthy = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class DeploymentDetailView(_Scoped):
    @extend_schema(request=DeploymentHealthSerializer, responses=DeploymentSerializer,
                   summary="Mark a deployment healthy or unhealthy (unhealthy ones are never routed to)")
    def patch(self, request: Request, route_id: int, deployment_id: int) -> Response:
        route = self.route(request, route_id)
        deployment = get_object_or_404(Deployment, pk=deployment_id, route=route)
        body = DeploymentHealthSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.set_deployment_health(deployment, body.validated_data["healthy"], actor=Actor.for_request(request),
                                       reason=body.validated_data["reason"])
        return Response(DeploymentSerializer(deployment).data)


class RevisionListView(_Scoped):
    @extend_schema(responses=RevisionSerializer(many=True), summary="Revisions of a route, newest first")
    def get(self, request: Request, route_id: int) -> Response:
        return Response(RevisionSerializer(self.route(request, route_id).revisions.order_by("-number"),
                                           many=True).data)


class _ActionView(_Scoped):
    body_class: type[ActSerializer] = ActSerializer
    kind = ""

    def run(self, route: Route, actor: Actor, common: dict[str, Any], data: dict[str, Any]) -> services.Outcome:
        raise NotImplementedError

    def post(self, request: Request, route_id: int) -> Response:
        route = self.route(request, route_id)
        body = self.body_class(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        alert = None
        if data.get("alert_id") is not None:
            from anomaly.models import Alert

            alert = Alert.objects.filter(pk=data["alert_id"], project=route.project).first()
            if alert is None:
                return Response({"detail": f"Unknown alert {data['alert_id']}."}, status=400)
        common = {"expected_version": data.pop("expected_version"), "alert": alert,
                  "idempotency_key": request.headers.get(IDEMPOTENCY_HEADER) or None}
        data.pop("alert_id", None)
        reason = data.pop("reason", "")
        try:
            outcome = self.run(route, Actor.for_request(request), {"reason": reason, **common}, data)
        except StaleVersion as exc:
            route.refresh_from_db()
            return Response({"detail": str(exc), "current": RouteSerializer(route).data}, status=409)
        except PushFailed as exc:
            return Response({"detail": str(exc), "action": ActionSerializer(exc.action).data}, status=502)
        except RoutingError as exc:
            return Response({"detail": str(exc)}, status=400)
        payload = ActionSerializer(outcome.action).data
        payload["duplicate"] = outcome.duplicate
        return Response(payload, status=200 if outcome.duplicate else 201)


@extend_schema(request=RollbackSerializer, responses={201: ActionSerializer},
               summary="Re-activate the previous revision (or to_revision)")
class RollbackView(_ActionView):
    body_class = RollbackSerializer

    def run(self, route: Route, actor: Actor, common: dict[str, Any], data: dict[str, Any]) -> services.Outcome:
        return services.rollback(route, actor, common.pop("reason"), data.get("to_revision"), **common)


@extend_schema(request=RerouteSerializer, responses={201: ActionSerializer},
               summary="New weights per deployment (percent, summing to 100)")
class RerouteView(_ActionView):
    body_class = RerouteSerializer

    def run(self, route: Route, actor: Actor, common: dict[str, Any], data: dict[str, Any]) -> services.Outcome:
        return services.reroute(route, actor, common.pop("reason"), weights=data["weights"],
                                fallbacks=data.get("fallbacks"), **common)


@extend_schema(request=PauseSerializer, responses={201: ActionSerializer}, summary="Take a deployment out")
class PauseView(_ActionView):
    body_class = PauseSerializer

    def run(self, route: Route, actor: Actor, common: dict[str, Any], data: dict[str, Any]) -> services.Outcome:
        return services.pause(route, actor, common.pop("reason"), deployment=data["deployment"], **common)


@extend_schema(request=PauseSerializer, responses={201: ActionSerializer}, summary="Put a paused deployment back")
class ResumeView(_ActionView):
    body_class = PauseSerializer

    def run(self, route: Route, actor: Actor, common: dict[str, Any], data: dict[str, Any]) -> services.Outcome:
        return services.resume(route, actor, common.pop("reason"), deployment=data["deployment"], **common)


class PreviewView(_Scoped):
    @extend_schema(
        parameters=[OpenApiParameter("to_revision", int), OpenApiParameter("deployment", str,
                    description="Preview sending 100 % to this deployment"),
                    OpenApiParameter("weights", str, description="id:percent,id:percent")],
        responses=dict, summary="Last 24 h cost, latency p95 and error rate: target vs current")
    def get(self, request: Request, route_id: int) -> Response:
        route = self.route(request, route_id)
        current = route.active_revision
        params = request.query_params
        weights: dict[str, float] | None = None
        target = None
        try:
            if params.get("to_revision"):
                target = route.revisions.filter(number=int(params["to_revision"])).first()
                if target is None:
                    return Response({"detail": f"Route {route} has no revision {params['to_revision']}."}, status=400)
            elif params.get("deployment"):
                weights = services.validate_weights(route, {params["deployment"]: 100.0},
                                                    list(current.paused) if current else [])
            elif params.get("weights"):
                raw = dict(part.split(":", 1) for part in params["weights"].split(","))
                weights = services.validate_weights(route, {k: float(v) for k, v in raw.items()},
                                                    list(current.paused) if current else [])
            else:
                return Response({"detail": "Give to_revision, deployment or weights."}, status=400)
        except (ValueError, RoutingError) as exc:
            return Response({"detail": str(exc)}, status=400)
        if weights is not None:
            weights = {k: v for k, v in weights.items() if v > 0}
        return Response(preview.impact(route, current, target, weights=weights))


class TimelineView(_Scoped):
    @extend_schema(parameters=[OpenApiParameter("hours", int)], responses=dict,
                   summary="Share of traffic per model version per hour, with revision change markers")
    def get(self, request: Request, route_id: int) -> Response:
        route = self.route(request, route_id)
        try:
            hours = min(max(int(request.query_params.get("hours", "24")), 1), 24 * 90)
        except ValueError:
            return Response({"detail": "hours must be an integer."}, status=400)
        until = timezone.now()
        return Response(timeline.timeline(route, until - timedelta(hours=hours), until))


# ---------------------------------------------------------------- actions, audit


class ActionListView(_Scoped, generics.ListAPIView):
    serializer_class = ActionSerializer

    def get_queryset(self) -> QuerySet[Action]:
        qs = Action.objects.filter(project=project_access(self.request).project).select_related(
            "route", "before_revision", "after_revision")
        if self.request.query_params.get("route"):
            qs = qs.filter(route_id=self.request.query_params["route"])
        return qs[:500]


class ActionDetailView(_Scoped):
    @extend_schema(responses=ActionSerializer, summary="One action with its preview and gateway syncs")
    def get(self, request: Request, action_id: int) -> Response:
        action = get_object_or_404(Action, pk=action_id, project=project_access(request).project)
        data = ActionSerializer(action).data
        data["syncs"] = GatewaySyncSerializer(action.syncs.all(), many=True).data
        return Response(data)


class AuditLogView(_Scoped):
    """``?format=csv|json`` downloads the log (``since``/``until`` ISO times filter); otherwise the newest 500."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ``format`` is our export switch, not DRF's renderer override.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["csv", "json"]),
                               OpenApiParameter("since", str), OpenApiParameter("until", str)],
                   responses={(200, "application/json"): AuditEntrySerializer(many=True),
                              (200, "text/csv"): OpenApiTypes.STR},
                   summary="The append-only audit log")
    def get(self, request: Request) -> Response | HttpResponse:
        project = project_access(request).project
        rows = audit.entries(project)
        try:
            if request.query_params.get("since"):
                rows = rows.filter(at__gte=request.query_params["since"])
            if request.query_params.get("until"):
                rows = rows.filter(at__lte=request.query_params["until"])
        except Exception:
            return Response({"detail": "since/until must be ISO 8601 timestamps."}, status=400)
        fmt = request.query_params.get("format", "")
        try:
            if fmt == "csv":
                response = HttpResponse(audit.export_csv(rows.iterator()), content_type="text/csv")
            elif fmt == "json":
                response = HttpResponse(audit.export_json(rows.iterator()), content_type="application/json")
            elif fmt:
                return Response({"detail": "format must be csv or json."}, status=400)
            else:
                return Response(AuditEntrySerializer(rows[:500], many=True).data)
        except Exception as exc:  # invalid dates surface when the query runs
            from django.core.exceptions import ValidationError as DjangoValidationError

            if isinstance(exc, DjangoValidationError | ValueError):
                return Response({"detail": "since/until must be ISO 8601 timestamps."}, status=400)
            raise
        response["Content-Disposition"] = f'attachment; filename="keel-audit-{project.slug}.{fmt}"'
        return response


# ---------------------------------------------------------------- policies, budgets, adapters


class _ProjectCrud(_Scoped):
    model: Any = None

    def get_queryset(self) -> QuerySet[Any]:
        project = project_access(self.request).project
        field = "route__project" if self.model is Budget else "project"
        return self.model.objects.filter(**{field: project})

    def get_serializer_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_serializer_context()  # type: ignore[misc]
        context["project"] = project_access(self.request).project
        return context

    def perform_create(self, serializer: Any) -> None:
        project = project_access(self.request).project
        config_changes.save(serializer, project, Actor.for_request(self.request).label,
                            extra={} if self.model is Budget else {"project": project})

    def perform_update(self, serializer: Any) -> None:
        config_changes.save(serializer, project_access(self.request).project, Actor.for_request(self.request).label)

    def perform_destroy(self, instance: Any) -> None:
        config_changes.delete(instance, project_access(self.request).project, Actor.for_request(self.request).label)


class PolicyListView(_ProjectCrud, generics.ListCreateAPIView):
    model = Policy
    serializer_class = PolicySerializer


class PolicyDetailView(_ProjectCrud, generics.RetrieveUpdateDestroyAPIView):
    model = Policy
    serializer_class = PolicySerializer


class BudgetListView(_ProjectCrud, generics.ListCreateAPIView):
    model = Budget
    serializer_class = BudgetSerializer


class BudgetDetailView(_ProjectCrud, generics.RetrieveUpdateDestroyAPIView):
    model = Budget
    serializer_class = BudgetSerializer


class ApproveSerializer(serializers.Serializer):
    alert_id = serializers.IntegerField()
    expected_version = serializers.IntegerField(required=False, allow_null=True, default=None)


class PolicyApproveView(_Scoped):
    @extend_schema(request=ApproveSerializer, responses={201: ActionSerializer},
                   summary="Run what a 'require approval' policy proposed for an alert")
    def post(self, request: Request, pk: int) -> Response:
        from controlplane.routing import policies

        policy = get_object_or_404(Policy, pk=pk, project=project_access(request).project)
        body = ApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outcome = policies.approve(policy, body.validated_data["alert_id"], Actor.for_request(request),
                                       expected_version=body.validated_data["expected_version"])
        except StaleVersion as exc:
            exc.route.refresh_from_db()
            return Response({"detail": str(exc), "current": RouteSerializer(exc.route).data}, status=409)
        except PushFailed as exc:
            return Response({"detail": str(exc), "action": ActionSerializer(exc.action).data}, status=502)
        except RoutingError as exc:
            return Response({"detail": str(exc)}, status=400)
        payload = ActionSerializer(outcome.action).data
        payload["duplicate"] = outcome.duplicate
        return Response(payload, status=200 if outcome.duplicate else 201)


class AdapterListView(_ProjectCrud, generics.ListCreateAPIView):
    model = GatewayAdapter
    serializer_class = GatewayAdapterSerializer
    write_role = Role.ADMIN


class AdapterDetailView(_ProjectCrud, generics.RetrieveUpdateDestroyAPIView):
    model = GatewayAdapter
    serializer_class = GatewayAdapterSerializer
    write_role = Role.ADMIN


class AdapterSyncListView(_Scoped):
    @extend_schema(responses=GatewaySyncSerializer(many=True), summary="The last 100 calls of one adapter")
    def get(self, request: Request, adapter_id: int) -> Response:
        adapter = get_object_or_404(GatewayAdapter, pk=adapter_id, project=project_access(request).project)
        return Response(GatewaySyncSerializer(adapter.syncs.all()[:100], many=True).data)


__all__ = ["status"]
