"""Routes, revisions and the actions that change them (rollback, reroute, pause/resume), plus remediation."""
