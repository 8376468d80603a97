from django.urls import path

from dashboards import api

urlpatterns = [
    path("metrics/timeseries", api.TimeSeriesView.as_view(), name="api-metrics-timeseries"),
    path("traces/<str:trace_id>", api.TraceView.as_view(), name="api-trace"),
]
