"""obsctl: catalog entries in; dashboards, SLO rules, alert routes and collector configs out."""

__version__ = "0.1.0"
