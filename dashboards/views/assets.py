"""plotly.js from the installed plotly package (no CDN): the version always matches the figure builders."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET


@lru_cache(maxsize=1)
def plotly_js_bytes() -> bytes:
    """Read once per process (about 4 MB) so ASGI can send it without a sync file iterator."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js")).read_bytes()


@require_GET
def plotly_js(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(plotly_js_bytes(), content_type="text/javascript")
    response["Cache-Control"] = "public, max-age=86400"
    return response
