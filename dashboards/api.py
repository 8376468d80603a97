"""API twins of the dashboards: time-series metrics with the UI's filters, and a trace with its spans.

Thin views over the same tenant-scoped query objects the pages use (``dashboards.queries``), so a script sees
exactly what the charts show.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.models import Role
from controlplane.permissions import HasProjectRole, project_access
from dashboards.filters import DIMENSIONS, RANGES, filters_from_request
from dashboards.queries import calls as call_queries
from dashboards.queries import rollups, spans
from dashboards.queries.scope import Scope

_FILTER_PARAMS = [
    OpenApiParameter("range", str, enum=list(RANGES), description="Time range ending now (default 24h)."),
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="Custom range start (with `to`)."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="Custom range end (with `from`)."),
    *[OpenApiParameter(name, str, description=f"Only this {name.replace('_', ' ')}.") for name in DIMENSIONS],
]


class SeriesPointSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField()
    key = serializers.CharField(help_text="Value of the `split` dimension ('' without a split).")
    calls = serializers.IntegerField()
    cost = serializers.FloatField()
    output_tokens = serializers.IntegerField()
    duration_ms_sum = serializers.FloatField()
    latency = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                    help_text="Latency ms at p50, p90, p95, p99.")
    ttft = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                 help_text="Time to first token ms at p50, p90, p95, p99.")

    def get_fields(self) -> dict[str, serializers.Field]:
        # `errors` is also the name of a Serializer property, so the field is added here rather than declared.
        fields = super().get_fields()
        fields["errors"] = serializers.IntegerField()
        return fields


class TimeSeriesSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    split = serializers.CharField(allow_blank=True)
    points = SeriesPointSerializer(many=True)


class TimeSeriesView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER

    @extend_schema(
        parameters=[*_FILTER_PARAMS, OpenApiParameter("split", str, enum=list(DIMENSIONS),
                                                        description="One series per value (the 8 busiest).")],
        responses=TimeSeriesSerializer,
        summary="Time-bucketed calls, errors, cost, tokens and latency/TTFT percentiles (the dashboards' data)",
    )
    def get(self, request: Request) -> Response:
        split = request.query_params.get("split", "")
        if split and split not in DIMENSIONS:
            raise ValidationError({"split": f"must be one of {', '.join(DIMENSIONS)}"})
        filters = filters_from_request(request)
        scope = Scope(project_access(request).project.tenant_id, filters)
        points = rollups.series(scope, split or None)
        data = {"start": filters.start, "end": filters.end, "split": split, "points": [asdict(p) for p in points]}
        return Response(TimeSeriesSerializer(data).data)


class SpanSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    span_id = serializers.CharField()
    parent_span_id = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    service = serializers.CharField()
    duration_ms = serializers.FloatField()
    status_code = serializers.CharField()
    status_message = serializers.CharField()
    attributes = serializers.DictField(child=serializers.CharField(), help_text="As stored (PII-redacted).")
    resource = serializers.DictField(child=serializers.CharField())
    scope_name = serializers.CharField()


class TraceCallSerializer(serializers.Serializer):
    span_id = serializers.CharField()
    route = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    operation = serializers.CharField()
    duration_ms = serializers.FloatField()
    ttft_ms = serializers.FloatField(allow_null=True)
    is_error = serializers.BooleanField()
    error_type = serializers.CharField(allow_blank=True)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.FloatField(allow_null=True)


class TraceSerializer(serializers.Serializer):
    trace_id = serializers.CharField()
    spans = SpanSerializer(many=True)
    calls = TraceCallSerializer(many=True, help_text="The trace's normalised LLM calls.")


def _trace_id(value: str) -> str:
    trace_id = value.strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise ValidationError({"trace_id": "must be 32 hexadecimal characters"})
    return trace_id


class TraceView(APIView):
    permission_classes = [HasProjectRole]
    read_role = Role.VIEWER

    @extend_schema(responses=TraceSerializer, summary="One trace: its spans (waterfall order) and its LLM calls")
    def get(self, request: Request, trace_id: str) -> Response:
        tenant = project_access(request).project.tenant_id
        wanted = _trace_id(trace_id)
        trace_spans = spans.trace_spans(tenant, wanted)
        if not trace_spans:
            raise NotFound("No such trace in this project.")
        calls: list[dict[str, Any]] = [asdict(c) for c in call_queries.calls_in_trace(tenant, wanted)]
        return Response(TraceSerializer({"trace_id": wanted, "spans": [asdict(s) for s in trace_spans],
                                         "calls": calls}).data)
