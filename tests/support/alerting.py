"""Alerting settings for tests that render the Alertmanager config but do not deliver notifications.

obsctl refuses to render a team whose alerts would reach no receiver; these webhooks on the
discard port give every team and severity a destination nobody listens on.
"""

from __future__ import annotations

from typing import Any

UNDELIVERED: dict[str, Any] = {
    "default": {
        "page": [{"name": "discard", "type": "webhook", "settings": {"url": "http://127.0.0.1:9/page"}}],
        "ticket": [{"name": "discard", "type": "webhook", "settings": {"url": "http://127.0.0.1:9/ticket"}}],
    },
}
