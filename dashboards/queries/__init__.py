"""Metric query objects for the dashboards: every ClickHouse read the pages make, tenant-scoped and bound.

Charts read ``rollups_1m`` (ranges up to a day) or ``rollups_1h`` (longer); only call search, per-user cost and
the trace view read ``llm_calls``/``otel_traces``, always by project and time or trace id.
"""
