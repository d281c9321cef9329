"""Catalog sources: they fetch bytes with their origin, nothing more."""
