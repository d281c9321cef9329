"""The one placeholder syntax of the template folders (alert-rules/, dashboards/, collectors/): `@{name}`.

It collides with none of the languages the templates hold: Grafana variables (`$var`, `${var}`),
PromQL, legend and Go templates (`{{label}}`), the collector's own `${env:NAME}`. A name that is not
defined where it is used, or a malformed `@{`, fails loudly with the place; nothing is left
half-filled. Values are escaped by the caller for where the text lands (obsctl.model.escape).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"@\{([A-Za-z_][A-Za-z0-9_]*)\}")
# the syntaxes the folders used before; left in a template they would pass through unfilled
_LEGACY = re.compile(r"(?<![{@$])\{(service|namespace|team)\}")
# collectors/ used ${name}; there the collector would read it as an environment variable (its own
# ${env:NAME} has a colon). In dashboards ${name} is Grafana's and legitimate.
_LEGACY_DOLLAR = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


class PlaceholderError(ValueError):
    """An undefined or malformed placeholder; the message names it and what is known."""


def names(text: str) -> list[str]:
    """The placeholder names in text, in order."""
    return PLACEHOLDER.findall(text)


def check(text: str, dollar_names: bool = False) -> None:
    """Refuse a malformed `@{` and the folders' old syntaxes (`{service}`; `${name}` where dollar_names)."""
    if "@{" in PLACEHOLDER.sub("", text):
        raise PlaceholderError(f"malformed placeholder in {text!r}")
    old = _LEGACY.search(text) or (_LEGACY_DOLLAR.search(text) if dollar_names else None)
    if old:
        raise PlaceholderError(f"{old.group(0)} is not a placeholder: write @{{{old.group(1)}}}")


def fill_text(template: str, lookup: Callable[[str], str | None], known: Callable[[], list[str]],
              dollar_names: bool = False) -> str:
    """Replace every @{name} with lookup(name); a None answer is an undefined name."""
    check(template, dollar_names)

    def sub(m: re.Match[str]) -> str:
        found = lookup(m.group(1))
        if found is None:
            raise PlaceholderError(f"undefined placeholder @{{{m.group(1)}}} (known here: {', '.join(known())})")
        return found

    return PLACEHOLDER.sub(sub, template)


def fill(template: str, values: Mapping[str, Any], dollar_names: bool = False) -> str:
    """Replace every @{name} with str(values[name])."""
    return fill_text(template, lambda n: str(values[n]) if n in values else None, lambda: sorted(values),
                     dollar_names)


def fill_tree(node: Any, values: Mapping[str, Any], on_error: Callable[[str, PlaceholderError], Exception],
              where: str = "", dollar_names: bool = False) -> Any:
    """Fill every string of a parsed tree; a string that is exactly one placeholder takes the value
    itself (a number, a list), so a value can never add keys or change the structure around it."""
    if isinstance(node, dict):
        return {k: fill_tree(v, values, on_error, f"{where}.{k}" if where else str(k), dollar_names)
                for k, v in node.items()}
    if isinstance(node, list):
        return [fill_tree(v, values, on_error, f"{where}[{i}]", dollar_names) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    try:
        whole = PLACEHOLDER.fullmatch(node)
        if whole:
            if whole.group(1) not in values:
                raise PlaceholderError(f"undefined placeholder {node} (known here: {', '.join(sorted(values))})")
            return values[whole.group(1)]
        return fill(node, values, dollar_names)
    except PlaceholderError as exc:
        raise on_error(where, exc) from None
