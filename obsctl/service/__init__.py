"""obsctl."""
