"""Pure SLO math and alert tiers; query.py and report.py do the I/O and reports."""
