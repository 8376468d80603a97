"""What ``serve`` prints once it accepts connections: where the UI is, how to log in, how to send data."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from controlplane.demo import AdminLogin


def otlp_env_lines(url: str, key: str) -> list[str]:
    """The two lines to paste into an app's environment (OTel SDKs URL-decode header values)."""
    return [
        f"OTEL_EXPORTER_OTLP_ENDPOINT={url}",
        f"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20{quote(key, safe='<>')}",
    ]


@dataclass
class Banner:
    url: str
    embedded: bool
    admin: AdminLogin | None = None
    demo_project: str = ""
    demo_key: str = ""

    def render(self) -> str:
        lines = ["", f"Keel is running at {self.url}/", ""]
        if self.admin is not None:
            if self.admin.password is not None:
                login = f"{self.admin.username} / {self.admin.password}"
                lines.append(f"  Log in:        {login}   (kept in var/admin_password)")
            else:
                lines.append(f"  Log in:        {self.admin.username} (password changed since first start)")
        if self.embedded:
            lines.append("  Runtime:       web + Celery worker + beat in this process (embedded ClickHouse)")
        else:
            lines.append("  Runtime:       web only; run `celery -A controlplane worker` and `... beat` separately")
        if self.demo_key:
            lines += [
                f"  Demo project:  {self.demo_project} (history backfill + live simulated traffic with incidents)",
                f"  Ingest key:    {self.demo_key}",
                "",
                "  Send your own app's traces to the demo project:",
                "",
                *otlp_env_lines(self.url, self.demo_key),
            ]
        else:
            lines += [
                "",
                "  No demo project. Create a project and ingest key with:",
                "    python manage.py createapikey --project my-app",
                "  then point your app at Keel:",
                "",
                *otlp_env_lines(self.url, "<your key>"),
            ]
        lines += ["", "  Ctrl-C stops Keel (in-flight requests, ingest batches and tasks finish first).", "", ""]
        return "\n".join(lines)
