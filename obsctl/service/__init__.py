"""`obsctl serve`: the control service.

HTTP API (bearer tokens from `serve.read_tokens` / `serve.write_tokens` / `serve.tokens_file`;
with no token configured, auth is off and the banner says so):

- `PUT /v1/services/{namespace}/{name}` (write): register or replace an obsctl.dev/v1 Service
  document (JSON or YAML body); 201 created, 200 replaced, 422 with located problems.
- `POST /v1/services` (write): register, 409 if it exists. `DELETE /v1/services/{ns}/{name}` (write).
- `GET /v1/services`, `GET /v1/services/{ns}/{name}` (read).
- `GET /status`, `GET /status/{ns}/{name}` (read): each artifact's last outcome, digests, drift, error.
- `GET /plan` (read): what a reconcile would change now, with diffs. `POST /reconcile` (write).
- `GET /audit` (read). Open: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`.
- `GET /v1/reports?team=&service=&slo=&period=&format=&charts=` (read): the SLO report (`obsctl slo
  report`) of the current catalog from `prometheus.url`. period: rolling (default), this-month,
  last-month, this-quarter, last-quarter, YYYY-MM, YYYY-Qn; format: json (default, the versioned
  schema), markdown, html, table; charts=true adds the chart series. 400 bad period, 404 no SLO
  matches the filters, 503 no Prometheus URL configured or Prometheus unreachable (Retry-After),
  502 Prometheus rejected a query. Header `X-Obsctl-Report-Origin: prometheus|snapshot`.
- Snapshots: a closed calendar month or quarter (ended 15 min ago or more) is built once for the
  whole catalog, with charts, and kept in the state store under `calendar:<period>`; later requests
  (any replica) are served from it, filtered on the way out, so it outlives Prometheus retention and
  catalog changes. Taken on demand, by the first request for the period (no periodic job: ask for
  `period=last-month` once after each month ends, e.g. from a cron job, while Prometheus still holds
  the data). Partial or data-less reports are never stored. `refresh=true` (write) rebuilds one.
  `GET /v1/reports/snapshots` (read) lists the keys.

Modules: runtime (composition from settings), http (FastAPI app), reports (reports and snapshots),
auth, metrics, logs, server.
"""
