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

Modules: runtime (composition from settings), http (FastAPI app), auth, metrics, logs, server.
"""
