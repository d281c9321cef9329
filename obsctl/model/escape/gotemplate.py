"""Text that Prometheus/Alertmanager Go templating must print verbatim (alert labels' and annotations' text)."""

from __future__ import annotations

import json


def literal(text: str) -> str:
    """`text` as Go templating prints it: verbatim, whatever braces it holds.

    Text with a brace becomes one template action printing a string constant (`{{ "..." }}`;
    JSON string escapes are valid Go escapes), so `{{ .Value }}` or a stray `{` next to our own
    actions can never start an action.
    """
    if "{" not in text and "}" not in text:
        return text
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"
