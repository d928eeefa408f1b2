"""Logical addresses, refs and the rules every name and blob key must satisfy.

An address is ``dp://<tenant>/<kind>/<name>@<ref>``; inside a tenant and a kind the short
form ``<name>@<ref>`` (or just ``<name>``, meaning ``latest``) is enough. Everything here
is pure string work: it runs before anything touches storage, and a value that breaks a
rule raises :class:`~dataplane.errors.InvalidNameError` whose ``rule`` says which one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .errors import InvalidNameError

__all__ = [
    "KINDS",
    "Address",
    "Kind",
    "Ref",
    "check_key",
    "check_name",
    "check_tenant",
    "parse_address",
    "parse_ref",
]

Kind = Literal["models", "datasets", "checkpoints", "features"]
KINDS: tuple[Kind, ...] = ("models", "datasets", "checkpoints", "features")
SCHEME = "dp://"
MAX_NAME_LENGTH = 200
MAX_KEY_BYTES = 1024
MAX_VERSION = 2**31 - 1  # the catalog's integer column

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _common_path_rules(value: str, what: str) -> None:
    """Rules shared by names and blob keys: the ones that keep paths inside their root."""
    if not isinstance(value, str):
        raise InvalidNameError(repr(value), f"{what} must be a string")
    if value == "":
        raise InvalidNameError(value, f"{what} must not be empty")
    if _CONTROL.search(value):
        raise InvalidNameError(value, f"{what} must not contain control characters")
    if value.startswith("/"):
        raise InvalidNameError(value, f"{what} must not start with '/'")
    if value.endswith("/"):
        raise InvalidNameError(value, f"{what} must not end with '/'")
    if "\\" in value:
        raise InvalidNameError(value, f"{what} must not contain '\\'")
    for segment in value.split("/"):
        if segment == "":
            raise InvalidNameError(value, f"{what} must not contain an empty segment ('//')")
        if segment in (".", ".."):
            raise InvalidNameError(value, f"{what} must not contain a '{segment}' segment")


def check_name(name: str) -> str:
    """Validate an artifact name (``bert-base``, ``nlp/bert-base``) and return it.

    Rules: 1 to 200 characters; segments separated by single ``/``; each segment starts
    with a letter or digit and uses only ``A-Z a-z 0-9 . _ -``; no ``.`` or ``..``.
    """
    _common_path_rules(name, "name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(name, f"name must be at most {MAX_NAME_LENGTH} characters")
    for segment in name.split("/"):
        if not _NAME_SEGMENT.fullmatch(segment):
            raise InvalidNameError(
                name,
                f"segment {segment!r} must start with a letter or digit and use only "
                "letters, digits, '.', '_' and '-'",
            )
    return name


def check_tenant(tenant: str) -> str:
    """Validate a tenant: 1 to 63 of ``a-z 0-9 _ -``, starting with a letter or digit."""
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise InvalidNameError(
            str(tenant),
            "tenant must be 1-63 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit",
        )
    return tenant


def check_kind(kind: str) -> Kind:
    """Validate a kind: one of ``models``, ``datasets``, ``checkpoints``, ``features``."""
    if kind not in KINDS:
        raise InvalidNameError(kind, f"kind must be one of {', '.join(KINDS)}")
    return kind


def check_key(key: str) -> str:
    """Validate a blob key (a path relative to a backend's root) and return it.

    Keys may use any printable unicode, but never escape their root: no leading or
    trailing ``/``, no empty, ``.`` or ``..`` segments, no backslash, no control
    characters, at most 1024 bytes of UTF-8.
    """
    _common_path_rules(key, "key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidNameError(key, f"key must be at most {MAX_KEY_BYTES} bytes of UTF-8")
    return key


@dataclass(frozen=True)
class Ref:
    """What follows ``@`` in an address: a version, an alias, ``latest`` or a digest."""

    kind: Literal["version", "alias", "latest", "digest"]
    value: str | int

    def __str__(self) -> str:
        return str(self.value)


LATEST = Ref("latest", "latest")


def parse_ref(text: str) -> Ref:
    """Parse ``3``, ``prod``, ``latest`` or ``sha256:<64 hex>`` into a :class:`Ref`."""
    if text == "latest":
        return LATEST
    if text.isdigit():
        if not text.isascii():
            raise InvalidNameError(text, "version numbers use the digits 0-9")
        number = int(text)
        if not 1 <= number <= MAX_VERSION:
            raise InvalidNameError(text, f"version numbers run from 1 to {MAX_VERSION}")
        return Ref("version", number)
    if text.startswith("sha256:"):
        if not _DIGEST.fullmatch(text):
            raise InvalidNameError(text, "a digest ref is 'sha256:' and 64 lowercase hex digits")
        return Ref("digest", text)
    check_alias(text)
    return Ref("alias", text)


def check_alias(alias: str) -> str:
    """Validate an alias: a letter, then up to 63 of ``A-Z a-z 0-9 . _ -``; not 'latest'."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidNameError(
            str(alias),
            "an alias starts with a letter and uses up to 64 letters, digits, '.', '_' or '-'",
        )
    if alias == "latest":
        raise InvalidNameError(alias, "'latest' is reserved and cannot be set as an alias")
    return alias


@dataclass(frozen=True)
class Address:
    """A parsed, validated logical address; ``str()`` gives the canonical ``dp://`` form."""

    tenant: str
    kind: Kind
    name: str
    ref: Ref = LATEST

    def __str__(self) -> str:
        return f"{SCHEME}{self.tenant}/{self.kind}/{self.name}@{self.ref}"

    @property
    def path(self) -> str:
        """``tenant/kind/name``: the string routes are matched against."""
        return f"{self.tenant}/{self.kind}/{self.name}"

    def at(self, ref: Ref) -> Address:
        """The same name at another ref."""
        return Address(self.tenant, self.kind, self.name, ref)


def parse_address(text: str, *, tenant: str, kind: Kind | None = None) -> Address:
    """Parse a full ``dp://tenant/kind/name@ref`` or a short ``name@ref``.

    The short form takes ``tenant`` and ``kind`` from the caller (a domain store knows its
    kind); a full address must agree with ``kind`` when one is given. A missing ``@ref``
    means ``latest``.
    """
    if not isinstance(text, str) or not text:
        raise InvalidNameError(str(text), "address must be a non-empty string")
    body, ref = _split_ref(text)
    if body.startswith(SCHEME):
        parts = body[len(SCHEME) :].split("/", 2)
        if len(parts) != 3:
            raise InvalidNameError(text, "a full address is dp://<tenant>/<kind>/<name>@<ref>")
        tenant, found_kind, name = parts
        checked_kind = check_kind(found_kind)
        if kind is not None and checked_kind != kind:
            raise InvalidNameError(text, f"address is of kind {checked_kind!r}, expected {kind!r}")
        kind = checked_kind
    elif "://" in body:
        raise InvalidNameError(text, "the only address scheme is dp://")
    else:
        name = body
    if kind is None:
        raise InvalidNameError(text, "a short address needs a kind from its context")
    return Address(check_tenant(tenant), check_kind(kind), check_name(name), ref)


def _split_ref(text: str) -> tuple[str, Ref]:
    if text.count("@") > 1:
        raise InvalidNameError(text, "an address has at most one '@'")
    body, sep, ref_text = text.partition("@")
    if sep and not ref_text:
        raise InvalidNameError(text, "'@' must be followed by a version, alias, latest or digest")
    return body, parse_ref(ref_text) if sep else LATEST
