"""Dashboard views: thin functions that read query objects, build figures and render templates."""
