"""Safe YAML reading with line numbers for every field, a size cap and an alias-expansion guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from obsctl.errors import Problem

MAX_BYTES = 1 << 20  # one catalog file
# libyaml's parser where PyYAML has it (the same events and marks, several times faster).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 100_000  # per document, counting alias expansions
MAX_DEPTH = 64  # nesting of mappings and lists; an obsctl document needs about 8

Path = tuple[str | int, ...]


@dataclass
class Document:
    """One YAML document with the line of every field path in it."""

    data: Any
    file: str
    index: int
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, *path: str | int) -> int:
        """The line of the deepest known prefix of `path` (1-based)."""
        p: Path = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)


class _TooBig(Exception):
    pass


class _TooDeep(Exception):
    pass


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.nodes = 0
        self.lines: dict[Path, int] = {}
        self.duplicates: list[tuple[Path, int]] = []

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig
        if len(path) > MAX_DEPTH:
            raise _TooDeep
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    key = str(key)
                if key in out:
                    self.duplicates.append(((*path, key), key_node.start_mark.line + 1))
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def load_documents(raw: bytes | str, file: str) -> tuple[list[Document], list[Problem]]:
    """Parse every document of a YAML stream; problems instead of exceptions."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_BYTES:
        return [], [Problem(file, 0, "", "", f"file is {size} bytes, over the {MAX_BYTES}-byte limit")]
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    docs: list[Document] = []
    problems: list[Problem] = []
    loader = _LOADER(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder(loader)
            try:
                data = builder.build(node, ())
            except _TooBig:
                problems.append(Problem(file, node.start_mark.line + 1, "", "",
                                        f"document expands to more than {MAX_NODES} nodes (alias bomb?)"))
                index += 1
                continue
            except (_TooDeep, RecursionError):
                problems.append(Problem(file, node.start_mark.line + 1, "", "",
                                        f"document nests deeper than {MAX_DEPTH} levels"))
                index += 1
                continue
            for dup_path, line in builder.duplicates:
                problems.append(Problem(file, line, "", ".".join(map(str, dup_path)), "duplicate key"))
            docs.append(Document(data, file, index, builder.lines))
            index += 1
    except RecursionError:  # the parser itself (composing a node) ran out of stack
        problems.append(Problem(file, 0, "", "", f"document nests deeper than {MAX_DEPTH} levels"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problems.append(Problem(file, line, "", "", f"invalid YAML: {exc.problem or exc}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 0, "", "", f"invalid YAML: {exc}"))
    finally:
        loader.dispose()
    return docs, problems
