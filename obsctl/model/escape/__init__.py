"""Escaping, one module per target language; every catalog value reaching a target goes through one.

- `promql`: the inside of a double-quoted PromQL string (label matcher values), also as Grafana reads it.
- `gotemplate`: text printed verbatim by Prometheus/Alertmanager Go templating (alert annotations).
- `otelcol`: string values of a collector config (the collector expands `${...}` in any string).
- YAML scalars: `obsctl.model.yamltext` (our emitter quotes whatever could be read as something else).
- JSON strings: `obsctl.model.conventions.json_bytes` (an encoder, never string concatenation).
"""
