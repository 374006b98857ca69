"""Training and evaluation: datasets, metrics, evaluation loops (headless, no Qt)."""
