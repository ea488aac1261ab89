"""One blueprint per concern, all under /api/v1 except health and metrics."""
