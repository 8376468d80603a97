"""plotly.js from the installed plotly package (no CDN): the version always matches the figure builders."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET


@lru_cache(maxsize=1)
def plotly_js_path() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@require_GET
def plotly_js(request: HttpRequest) -> HttpResponse:
    response = FileResponse(plotly_js_path().open("rb"), content_type="text/javascript")
    response["Cache-Control"] = "public, max-age=86400"
    return response
