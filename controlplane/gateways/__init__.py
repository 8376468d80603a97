"""Gateway integration: the pull policy endpoint, the LiteLLM plugin, and push adapters (LiteLLM admin, webhook)."""
