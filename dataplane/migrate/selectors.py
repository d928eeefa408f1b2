"""Which versions a migration moves: selectors by tenant, kind, name glob, alias and range.

On the command line a selector is ``tenant=T``, ``kind=K`` (or just ``models``,
``datasets``, ``checkpoints``), ``name=GLOB`` (or just ``GLOB``, where ``*`` matches
across ``/``), ``alias=A`` (or ``@A``: only versions an alias points at) or
``versions=N..M`` (``N..``, ``..M`` and ``N`` too). Several values of one field are
alternatives; different fields must all hold.

A version is selected when it is live (not tombstoned), matches, has an active location
on the source backend (any backend but the destination when no source is given) and no
active location on the destination yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..catalog import VersionRecord
from ..errors import ConfigError, NotFoundError
from ..names import check_alias, check_kind, check_tenant

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["MIGRATABLE_KINDS", "Selector", "parse_selectors", "select_versions"]

MIGRATABLE_KINDS = ("models", "datasets", "checkpoints")


@dataclass(frozen=True)
class Selector:
    """What to move; empty fields match everything."""

    tenant: str | None = None
    kinds: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    first: int | None = None
    last: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "kinds": list(self.kinds), "names": list(self.names),
                "aliases": list(self.aliases), "first": self.first, "last": self.last}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Selector:
        return cls(raw.get("tenant"), tuple(raw.get("kinds", ())), tuple(raw.get("names", ())),
                   tuple(raw.get("aliases", ())), raw.get("first"), raw.get("last"))

    def describe(self) -> str:
        parts = [f"tenant={self.tenant}"] if self.tenant else []
        parts += [f"kind={k}" for k in self.kinds] + [f"name={n}" for n in self.names]
        parts += [f"@{a}" for a in self.aliases]
        if self.first is not None or self.last is not None:
            parts.append(f"versions={self.first or ''}..{self.last or ''}")
        return " ".join(parts) or "everything"

    def matches_name(self, kind: str, name: str) -> bool:
        return (not self.kinds or kind in self.kinds) and (
            not self.names or any(fnmatchcase(name, glob) for glob in self.names))

    def matches_number(self, number: int) -> bool:
        return ((self.first is None or number >= self.first)
                and (self.last is None or number <= self.last))


def parse_selectors(items: list[str] | tuple[str, ...]) -> Selector:
    """A :class:`Selector` from command-line words (see the module docstring)."""
    fields: dict[str, list[str]] = {"tenant": [], "kind": [], "name": [], "alias": [],
                                    "versions": []}
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key in fields:
            fields[key].append(value)
        elif item.startswith("@"):
            fields["alias"].append(item[1:])
        elif item in MIGRATABLE_KINDS:
            fields["kind"].append(item)
        else:
            fields["name"].append(item)
    if len(fields["tenant"]) > 1 or len(fields["versions"]) > 1:
        raise ConfigError("give at most one tenant= and one versions= selector")
    first, last = _range(fields["versions"][0]) if fields["versions"] else (None, None)
    kinds = tuple(check_kind(k) for k in fields["kind"])
    bad = [k for k in kinds if k not in MIGRATABLE_KINDS]
    if bad:
        raise ConfigError(f"kind {bad[0]!r} cannot be migrated "
                          f"(only {', '.join(MIGRATABLE_KINDS)})")
    tenant = check_tenant(fields["tenant"][0]) if fields["tenant"] else None
    return Selector(tenant, kinds, tuple(fields["name"]),
                    tuple(check_alias(a) for a in fields["alias"]), first, last)


def _range(text: str) -> tuple[int | None, int | None]:
    low, sep, high = text.partition("..")
    try:
        first = int(low) if low else None
        last = (int(high) if high else None) if sep else first
    except ValueError:
        raise ConfigError(f"versions={text!r}: use N, N..M, N.. or ..M") from None
    if first is not None and last is not None and first > last:
        raise ConfigError(f"versions={text!r}: the range is empty")
    return first, last


def select_versions(plane: DataPlane, selector: Selector, source: str | None,
                    destination: str) -> list[tuple[VersionRecord, str]]:
    """``(version, backend it is copied from)`` for every version the selector moves."""
    tenant = selector.tenant or plane.tenant
    found: list[tuple[VersionRecord, str]] = []
    for kind in selector.kinds or MIGRATABLE_KINDS:
        for name in plane.catalog.names(tenant, kind):
            if not selector.matches_name(kind, name.name):
                continue
            wanted = _aliased(plane, tenant, kind, name.name, selector.aliases)
            for record in plane.catalog.versions(tenant, kind, name.name):
                if (wanted is not None and record.number not in wanted) or \
                        not selector.matches_number(record.number):
                    continue
                origin = source_of(record, source, destination)
                if origin is not None:
                    found.append((record, origin))
    return found


def source_of(record: VersionRecord, source: str | None, destination: str) -> str | None:
    """The backend ``record`` is copied from, or ``None`` when it does not move."""
    active = [loc.backend for loc in record.locations if loc.state == "active"]
    if destination in active:
        return None
    if source is not None:
        return source if source in active else None
    return next(iter(active), None)


def _aliased(plane: DataPlane, tenant: str, kind: str, name: str,
             aliases: tuple[str, ...]) -> set[int] | None:
    if not aliases:
        return None
    current = plane.catalog.aliases(tenant, kind, name)
    return {current[a] for a in aliases if a in current}


def require_some(selected: list[tuple[VersionRecord, str]], selector: Selector,
                 source: str | None, destination: str) -> None:
    """Refuse an empty selection with a message that says what was looked for."""
    if not selected:
        origin = f"on backend {source!r}" if source else f"outside backend {destination!r}"
        raise NotFoundError(f"nothing to migrate: no live version matching "
                            f"{selector.describe()} is active {origin}")


