"""Read API for what was stored: ``GET /api/v1/calls`` and ``GET /api/v1/usage``.

Thin views: resolve the project (read-scoped key or session member, via ``controlplane.permissions``), validate
the query string with a serializer, run one tenant-scoped selector, render. Errors are ``{"detail": …}``; bad
parameters are 400 naming the field; ClickHouse being unavailable is 503 + ``Retry-After``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from controlplane.permissions import HasProjectRole, project_access
from ingestion.clickhouse.client import is_unavailable_error
from ingestion.pagination import BadCursor, decode_cursor, encode_cursor
from ingestion.selectors.calls import MAX_LIMIT, CallFilters, CallsQuery
from ingestion.selectors.usage import GROUP_COLUMNS, UsageQuery

DEFAULT_LIMIT = 100
DEFAULT_USAGE_WINDOW = timedelta(hours=24)
RETRY_AFTER_SECONDS = 5
# ClickHouse DateTime (seconds, UInt32) covers 1970-2106; keep windows inside it.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2105, 12, 31, tzinfo=UTC)

_ERROR = inline_serializer("ApiError", {"detail": serializers.JSONField()})
_ERRORS = {
    400: OpenApiResponse(_ERROR, description="Invalid parameter; `detail` maps each field to its messages."),
    401: OpenApiResponse(_ERROR, description="No or invalid credentials."),
    403: OpenApiResponse(_ERROR, description="The key has no read scope or the user is not a member."),
    503: OpenApiResponse(_ERROR, description="ClickHouse is unavailable; retry after `Retry-After` seconds."),
}
_PROJECT_PARAM = OpenApiParameter(
    "project", str, description="Project slug (session users with several projects; keys are bound to one).",
)


# ---------------------------------------------------------------- request serializers


class _WindowSerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Inclusive start, ISO 8601 (UTC if no offset).")
    until = serializers.DateTimeField(required=False, help_text="Exclusive end, ISO 8601 (UTC if no offset).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("since", "until"):
            if attrs.get(name) is not None:
                value = attrs[name]
                value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
                if not EARLIEST <= value <= LATEST:
                    raise serializers.ValidationError(
                        {name: f"Must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}."})
                attrs[name] = value
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"since": "Must be earlier than until."})
        return attrs


class CallsParamsSerializer(_WindowSerializer):
    service = serializers.CharField(required=False, max_length=256)
    route = serializers.CharField(required=False, max_length=256)
    provider = serializers.CharField(required=False, max_length=128)
    model = serializers.CharField(required=False, max_length=256, help_text="Request or response model.")
    trace_id = serializers.RegexField(r"^[0-9a-fA-F]{32}$", required=False,
                                      error_messages={"invalid": "Must be 32 hex characters."})
    status = serializers.ChoiceField(choices=["ok", "error"], required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    cursor = serializers.CharField(required=False, max_length=512, help_text="Opaque; from the previous `next`.")

    def validate_trace_id(self, value: str) -> str:
        return value.lower()

    def validate_cursor(self, value: str) -> Any:
        try:
            return decode_cursor(value)
        except BadCursor as exc:
            raise serializers.ValidationError(str(exc)) from None


class UsageParamsSerializer(_WindowSerializer):
    group_by = serializers.ChoiceField(choices=list(GROUP_COLUMNS), required=False, default="model")


# ---------------------------------------------------------------- response serializers


class CallSerializer(serializers.Serializer):
    trace_id = serializers.CharField()
    span_id = serializers.CharField()
    timestamp = serializers.DateTimeField()
    service = serializers.CharField()
    route = serializers.CharField()
    provider = serializers.CharField()
    request_model = serializers.CharField()
    response_model = serializers.CharField()
    operation = serializers.CharField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField(allow_null=True, help_text="Null when the call is unpriced.")
    priced = serializers.BooleanField()
    duration_ms = serializers.FloatField()
    ttft_ms = serializers.FloatField(allow_null=True)
    status = serializers.ChoiceField(choices=["ok", "error"])
    error_type = serializers.CharField(allow_blank=True)


class CallsPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="URL of the next (older) page; null on the last page.")
    results = CallSerializer(many=True)


class UsageGroupSerializer(serializers.Serializer):
    key = serializers.CharField(allow_blank=True, help_text="The model, route, service or provider.")
    calls = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # (DRF pops declared fields)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField(help_text="Cost of priced calls; unpriced calls are counted, not costed.")
    unpriced_calls = serializers.IntegerField()


class UsageSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    group_by = serializers.ChoiceField(choices=list(GROUP_COLUMNS))
    granularity = serializers.ChoiceField(choices=["minute", "hour"], help_text="Rollup resolution used.")
    results = UsageGroupSerializer(many=True)
    totals = UsageGroupSerializer()


# ---------------------------------------------------------------- views


def _unavailable() -> Response:
    return Response({"detail": "ClickHouse is unavailable; retry shortly."}, status=503,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class _ReadView(APIView):
    permission_classes = [IsAuthenticated, HasProjectRole]

    def handle_exception(self, exc: Exception) -> Response:
        if is_unavailable_error(exc):
            return _unavailable()
        return super().handle_exception(exc)


class CallsView(_ReadView):
    @extend_schema(
        operation_id="calls_list",
        summary="Stored LLM calls, newest first",
        parameters=[CallsParamsSerializer, _PROJECT_PARAM],
        responses={200: CallsPageSerializer, **_ERRORS},
        tags=["calls"],
    )
    def get(self, request: Request) -> Response:
        params = CallsParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        access = project_access(request)
        filters = CallFilters(
            since=p.get("since"), until=p.get("until"), service=p.get("service", ""), route=p.get("route", ""),
            provider=p.get("provider", ""), model=p.get("model", ""), trace_id=p.get("trace_id", ""),
            status=p.get("status", ""),
        )
        calls, more = CallsQuery(access.project.tenant_id).page(filters, limit=p["limit"], after=p.get("cursor"))
        next_url = None
        if more and calls:
            next_url = replace_query_param(request.build_absolute_uri(), "cursor", encode_cursor(calls[-1].position))
        body = {"next": next_url, "results": [vars(c) for c in calls]}
        return Response(CallsPageSerializer(body).data)


class UsageView(_ReadView):
    @extend_schema(
        operation_id="usage_grouped",
        summary="Calls, errors, tokens, cost and unpriced calls per model, route, service or provider",
        description="Read from the per-minute/per-hour rollups; bounds are truncated to the minute. "
                    "Defaults: the last 24 hours, grouped by model.",
        parameters=[UsageParamsSerializer, _PROJECT_PARAM],
        responses={200: UsageSerializer, **_ERRORS},
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        params = UsageParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        access = project_access(request)
        until = p.get("until") or datetime.now(UTC) + timedelta(minutes=1)
        since = p.get("since") or until - DEFAULT_USAGE_WINDOW
        if since >= until:
            raise serializers.ValidationError({"since": "Must be earlier than until."})
        usage = UsageQuery(access.project.tenant_id).grouped(since, until, p["group_by"])
        body = {
            "since": usage.since, "until": usage.until, "group_by": usage.group_by, "granularity": usage.granularity,
            "results": [vars(g) for g in usage.groups], "totals": vars(usage.totals),
        }
        return Response(UsageSerializer(body).data)
