"""Serving a finished model: generation (and, later, evaluation)."""
