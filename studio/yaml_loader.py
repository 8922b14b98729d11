"""Reading YAML a person wrote: PyYAML's safe loader, made strict where it is silently forgiving.

Plain `yaml.safe_load` keeps the last of two equal keys in a mapping (`lr: 1e-4` ... `lr: 0.5`
quietly trains with 0.5) and lets an integer too long to convert escape as a bare `ValueError`.
`StrictLoader` refuses both as `yaml.YAMLError`s that carry the line (`problem_mark`), so callers
report them like any syntax error, in their own words (`studio.config` for recipes). Keys merged
in with `<<: *anchor` may still be overridden: that is what merging is for. Turning the loaded data
into settings is left to `studio.settings`.
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ConstructorError):
    """A mapping names the same key twice; `key`, `line` and `first_line` (1-based) say which and where."""

    def __init__(self, key: Any, node: Node, first: Node):
        self.key, self.line, self.first_line = key, node.start_mark.line + 1, first.start_mark.line + 1
        super().__init__(None, None, f"the key {key!r} appears twice (lines {self.first_line} and {self.line})",
                         node.start_mark)


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate keys and unreadably long integers."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key; the safe constructor refuses it with its own words
                    continue
                if first is not None:
                    raise DuplicateKeyError(key, key_node, first)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Node) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python refuses to convert integers of more than 4300 digits
            raise ConstructorError(None, None, f"a whole number of {len(node.value)} digits is too long to read",
                                   node.start_mark) from None


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)


def strict_load(text: str) -> Any:
    """`yaml.safe_load`, refusing duplicate keys and integers too long to read (as `yaml.YAMLError`)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
