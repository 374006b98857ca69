"""Model set-up: the Model Manager dialog and the missing-weights banner."""
