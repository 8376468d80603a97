"""What the simulated company runs: services, the routes they call, and the models behind each route.

Figures are realistic orders of magnitude (public list prices, typical token counts and speeds), so the demo's
cost and latency charts look like a real small product; prices themselves come from Keel's price table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    provider: str  # gen_ai.provider.name
    request_model: str  # gen_ai.request.model
    response_model: str  # gen_ai.response.model: the model version actually served
    server_address: str
    ttft_s: float  # median time to first token
    tokens_per_s: float  # median output speed
    latency_sigma: float = 0.35  # lognormal spread of latency


@dataclass(frozen=True)
class Route:
    name: str  # keel.route
    operation: str  # gen_ai.operation.name
    deployments: tuple[tuple[Model, float], ...]  # (model, traffic share)
    input_tokens_median: float
    output_tokens_median: float
    streamed_share: float
    max_tokens: int = 1024


@dataclass(frozen=True)
class Service:
    name: str  # service.name
    version: str
    cost_center: str  # keel.cost_center
    routes: tuple[tuple[str, float], ...]  # (route name, share of this service's calls)
    traffic_share: float  # share of all calls


GPT_4O_MINI = Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "api.openai.com", 0.45, 85.0)
GPT_41_MINI = Model("openai", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "api.openai.com", 0.70, 55.0, 0.45)
CLAUDE_HAIKU = Model("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "api.anthropic.com",
                     0.60, 65.0)
GEMINI_FLASH = Model("gcp.gemini", "gemini-2.0-flash", "gemini-2.0-flash-001", "generativelanguage.googleapis.com",
                     0.35, 150.0)
EMBEDDING_SMALL = Model("openai", "text-embedding-3-small", "text-embedding-3-small", "api.openai.com", 0.0, 0.0, 0.3)

ROUTES: dict[str, Route] = {
    "chat-default": Route(
        "chat-default", "chat", ((GPT_4O_MINI, 0.7), (CLAUDE_HAIKU, 0.3)),
        input_tokens_median=900, output_tokens_median=260, streamed_share=0.7,
    ),
    "summarize": Route(
        "summarize", "chat", ((CLAUDE_HAIKU, 0.65), (GEMINI_FLASH, 0.35)),
        input_tokens_median=2600, output_tokens_median=180, streamed_share=0.1, max_tokens=512,
    ),
    "embed": Route(
        "embed", "embeddings", ((EMBEDDING_SMALL, 1.0),),
        input_tokens_median=320, output_tokens_median=0, streamed_share=0.0, max_tokens=0,
    ),
}

SERVICES: tuple[Service, ...] = (
    Service("checkout-assistant", "2.14.0", "commerce", (("chat-default", 0.8), ("embed", 0.2)), 0.45),
    Service("support-bot", "1.9.3", "support", (("chat-default", 0.6), ("summarize", 0.4)), 0.35),
    Service("search-summarizer", "0.22.1", "search", (("summarize", 0.55), ("embed", 0.45)), 0.20),
)

# Background failures: (error.type, HTTP status, share of errors). Overall rate is BACKGROUND_ERROR_RATE.
BACKGROUND_ERROR_RATE = 0.012
ERROR_TYPES: tuple[tuple[str, int, float], ...] = (
    ("RateLimitError", 429, 0.45),
    ("APITimeoutError", 408, 0.25),
    ("InternalServerError", 500, 0.2),
    ("BadRequestError", 400, 0.1),
)

USERS = 400  # distinct user.id values, Zipf-like popularity
