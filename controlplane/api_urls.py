"""Routing, remediation, audit and gateway endpoints under ``/api/v1/``."""

from __future__ import annotations

from django.urls import path

from controlplane import api
from controlplane.gateways import pull

urlpatterns = [
    path("routing/policy", pull.routing_policy, name="routing-policy"),
    path("routes", api.RouteListView.as_view(), name="api-routes"),
    path("routes/discover", api.RouteDiscoverView.as_view(), name="api-routes-discover"),
    path("routes/<int:route_id>", api.RouteDetailView.as_view(), name="api-route"),
    path("routes/<int:route_id>/deployments", api.DeploymentListView.as_view(), name="api-route-deployments"),
    path("routes/<int:route_id>/deployments/<int:deployment_id>", api.DeploymentDetailView.as_view(),
         name="api-route-deployment"),
    path("routes/<int:route_id>/revisions", api.RevisionListView.as_view(), name="api-route-revisions"),
    path("routes/<int:route_id>/rollback", api.RollbackView.as_view(), name="api-route-rollback"),
    path("routes/<int:route_id>/reroute", api.RerouteView.as_view(), name="api-route-reroute"),
    path("routes/<int:route_id>/pause", api.PauseView.as_view(), name="api-route-pause"),
    path("routes/<int:route_id>/resume", api.ResumeView.as_view(), name="api-route-resume"),
    path("routes/<int:route_id>/preview", api.PreviewView.as_view(), name="api-route-preview"),
    path("routes/<int:route_id>/timeline", api.TimelineView.as_view(), name="api-route-timeline"),
    path("actions", api.ActionListView.as_view(), name="api-actions"),
    path("actions/<int:action_id>", api.ActionDetailView.as_view(), name="api-action"),
    path("audit", api.AuditLogView.as_view(), name="api-audit"),
    path("policies", api.PolicyListView.as_view(), name="api-policies"),
    path("policies/<int:pk>", api.PolicyDetailView.as_view(), name="api-policy"),
    path("policies/<int:pk>/approve", api.PolicyApproveView.as_view(), name="api-policy-approve"),
    path("budgets", api.BudgetListView.as_view(), name="api-budgets"),
    path("budgets/<int:pk>", api.BudgetDetailView.as_view(), name="api-budget"),
    path("gateway-adapters", api.AdapterListView.as_view(), name="api-gateway-adapters"),
    path("gateway-adapters/<int:pk>", api.AdapterDetailView.as_view(), name="api-gateway-adapter"),
    path("gateway-adapters/<int:adapter_id>/syncs", api.AdapterSyncListView.as_view(), name="api-gateway-syncs"),
]
