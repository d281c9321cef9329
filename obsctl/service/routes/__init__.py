"""The HTTP API, one router per concern: health, registrations, status, reports."""
