"""Migration 0007 swaps the traces landing views of an existing store for the current flattening SELECT and
makes the wide tables merge vertically."""

from __future__ import annotations

import json
import os
import textwrap

from tests.support import manage

UPGRADE_SCRIPT = textwrap.dedent("""
    import json
    from ingestion.clickhouse import landing
    from ingestion.clickhouse.client import get_client
    from ingestion.clickhouse.migrator import migrate
    migrate(log=lambda _l: None, up_to=6)
    ch = get_client()
    views = [(landing.TRACES_LANDING, False), (landing.TRACES_CUSTOM_LANDING, True)]
    # A store from before 0007: its views build attribute keys as plain strings.
    for table, custom in views:
        old = landing.traces_flatten_select(table, custom=custom).replace("toLowCardinality(kv.key)", "kv.key")
        ch.command(f"ALTER TABLE {table}_mv MODIFY QUERY {old}")
    query = lambda t: ch.query("SELECT create_table_query FROM system.tables WHERE name = {n:String}",
                               parameters={"n": t + "_mv"}).result_rows[0][0]
    before = ["toLowCardinality" in query(t) for t, _ in views]
    applied = [m.version for m in migrate(log=lambda _l: None)]
    after = ["toLowCardinality" in query(t) for t, _ in views]
    ddl = lambda t: ch.query("SELECT create_table_query FROM system.tables WHERE name = {n:String}",
                             parameters={"n": t}).result_rows[0][0]
    vertical = ["vertical_merge_algorithm_min_rows_to_activate = 1" in ddl(t) for t in ("otel_traces", "llm_calls")]
    print(json.dumps({"applied": applied, "before": before, "after": after, "vertical": vertical}))
""")


def test_migration_0007_upgrades_the_traces_landing_views_and_merge_settings(tmp_path: os.PathLike[str]) -> None:
    done = manage("shell", "-c", UPGRADE_SCRIPT, env={"KEEL_VAR_DIR": str(tmp_path)}, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["applied"][0] == 7
    assert out["before"] == [False, False] and out["after"] == [True, True]
    assert out["vertical"] == [True, True]
