"""Vision: backbones, weights, features, correlation maps → masks (headless, no Qt)."""
