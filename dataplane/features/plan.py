"""What ``apply`` would change: a :class:`Plan` of adds, updates and deletes.

:func:`diff` compares the applied definitions with the wanted ones object by object
(entities, then views, then services). An update lists the fields that differ. A view
update that changes anything its stored values depend on (entities, their join keys or
key dtypes, features, source, timestamp columns) is marked ``resets_online``: the
adapter drops that view's online values and its materialization watermark, because old
values no longer fit. An entity change is also an update of every view that uses it (so
its source is checked again). An empty plan means ``apply`` does nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .definitions import Definitions

__all__ = ["Change", "Plan", "diff"]

Action = Literal["add", "update", "delete"]
_RESET_FIELDS = {"entities", "join_keys", "features", "source", "timestamp_field",
                 "created_timestamp_field"}
_KINDS = (("entity", "entities"), ("view", "views"), ("service", "services"))


@dataclass(frozen=True)
class Change:
    """One object to add, update or delete; ``fields`` maps a changed field to
    ``(old, new)``."""

    action: Action
    kind: str
    name: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def resets_online(self) -> bool:
        """A view whose stored online values no longer fit its definition."""
        return self.kind == "view" and (self.action == "delete"
                                        or bool(_RESET_FIELDS & set(self.fields)))

    def __str__(self) -> str:
        sign = {"add": "+", "update": "~", "delete": "-"}[self.action]
        detail = "".join(f"\n    {k}: {old!r} -> {new!r}" for k, (old, new)
                         in self.fields.items())
        reset = " (online values reset)" if self.action == "update" and self.resets_online else ""
        return f"  {sign} {self.kind} {self.name}{reset}{detail}"


@dataclass(frozen=True)
class Plan:
    """The changes from the applied definitions to the wanted ones, and the wanted ones."""

    changes: tuple[Change, ...]
    definitions: Definitions

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def of(self, action: Action, kind: str) -> list[str]:
        """Names of the ``kind`` objects this plan will ``action``."""
        return [c.name for c in self.changes if c.action == action and c.kind == kind]

    def summary(self) -> str:
        counts = {a: sum(c.action == a for c in self.changes) for a in ("add", "update",
                                                                        "delete")}
        return f"{counts['add']} to add, {counts['update']} to update, " \
               f"{counts['delete']} to delete"

    def __str__(self) -> str:
        if not self.changes:
            return "no changes: the applied definitions already match"
        return "\n".join([f"plan: {self.summary()}", *map(str, self.changes)])


def diff(applied: Definitions, wanted: Definitions) -> Plan:
    """The plan that turns ``applied`` into ``wanted``."""
    changes: list[Change] = []
    for kind, section in _KINDS:
        before, after = _items(applied, section), _items(wanted, section)
        for name, item in after.items():
            if name not in before:
                changes.append(Change("add", kind, name))
            elif item != before[name]:
                changed = {k: (before[name].get(k), v) for k, v in item.items()
                           if before[name].get(k) != v}
                changes.append(Change("update", kind, name, changed))
        changes += [Change("delete", kind, name) for name in before if name not in after]
    return Plan(tuple(changes), wanted)


def _items(definitions: Definitions, section: str) -> dict[str, dict[str, Any]]:
    """The objects of one section by name; a view also lists the join keys (and their
    dtypes) of its entities, so an entity change shows up on, and resets, its views."""
    items: list[dict[str, Any]] = definitions.to_dict()[section]
    if section == "views":
        for item, view in zip(items, definitions.views, strict=True):
            item["join_keys"] = [list(key) for key in definitions.join_keys(view)]
    return {item["name"]: item for item in items}
