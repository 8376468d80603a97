"""Dashboard pages (mounted last at the root, so /v1/, /api/ and /admin/ win)."""

from __future__ import annotations

from django.contrib.auth.views import LogoutView
from django.urls import path

from dashboards.views import alerts, assets, auth, config, detectors, pages, routes, settings, versions

app_name = "dashboards"

urlpatterns = [
    path("login/", auth.ThrottledLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("assets/plotly.min.js", assets.plotly_js, name="plotly-js"),
    path("", pages.overview, name="overview"),
    path("cost/", pages.cost, name="cost"),
    path("cost/users/", pages.cost_users, name="cost-users"),
    path("latency/", pages.latency, name="latency"),
    path("traces/", pages.traces, name="traces"),
    path("traces/<str:trace_id>/", pages.trace_detail, name="trace-detail"),
    path("coverage/", pages.coverage, name="coverage"),
    path("versions/", versions.versions, name="versions"),
    path("alerts/", alerts.alert_list, name="alerts"),
    path("alerts/feed/", alerts.alert_feed, name="alert-feed"),
    path("alerts/<int:alert_id>/", alerts.alert_detail, name="alert-detail"),
    path("alerts/<int:alert_id>/approve/<int:policy_id>/", alerts.approve_proposal, name="alert-approve"),
    path("alerts/<int:alert_id>/<str:verb>/", alerts.alert_action, name="alert-action"),
    path("routes/", routes.route_list, name="routes"),
    path("routes/<int:route_id>/", routes.route_detail, name="route-detail"),
    path("routes/<int:route_id>/rollback/", routes.route_rollback, name="route-rollback"),
    path("routes/<int:route_id>/reroute/", routes.route_reroute, name="route-reroute"),
    path("routes/<int:route_id>/reroute/preview/", routes.route_reroute_preview, name="route-reroute-preview"),
    path("settings/", settings.settings_page, name="settings"),
    path("settings/detectors/", detectors.detector_settings, name="detectors"),
    path("settings/keys/", settings.issue_key, name="settings-issue-key"),
    path("settings/keys/<int:key_id>/revoke/", settings.revoke_key, name="settings-revoke-key"),
    path("settings/members/", settings.set_member, name="settings-member"),
    path("settings/project/", settings.update_project, name="settings-project"),
    path("settings/<slug:slug>/new/", config.config_new, name="config-new"),
    path("settings/<slug:slug>/<int:pk>/", config.config_edit, name="config-edit"),
    path("settings/<slug:slug>/<int:pk>/delete/", config.config_delete, name="config-delete"),
]
