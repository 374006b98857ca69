"""Gallery: photo folders, safe image loading, feature cache, queries (headless, no Qt)."""
