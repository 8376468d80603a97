"""Keel's ClickHouse layer: client factory, DDL rendering, numbered migrations and query objects."""
