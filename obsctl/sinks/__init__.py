"""Sinks: one backend each (files, Grafana, Prometheus rule files, ruler, Alertmanager)."""
