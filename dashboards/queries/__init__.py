"""Metric query objects for the dashboards: every ClickHouse read the pages make, tenant-scoped and bound.

Charts read ``rollups_1m`` (ranges up to a day) or ``rollups_1h`` (longer), spend by user ``rollups_user_1h``;
only call search, the trace view and the partial hours at the ends of a by-user window read
``llm_calls``/``otel_traces``, always by project and time or trace id.
"""
