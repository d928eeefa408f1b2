"""Names, refs and addresses are validated before anything touches storage."""

from __future__ import annotations

import pytest

from dataplane.errors import InvalidNameError
from dataplane.names import Address, Ref, check_key, check_name, parse_address, parse_ref


@pytest.mark.parametrize("name", ["bert", "nlp/bert-base", "a.b_c-d", "x" * 200, "7b/v2"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty"),
        ("x" * 201, "at most 200"),
        ("a/../b", "'..'"),
        ("..", "'..'"),
        ("./a", "'.'"),
        ("/abs", "start with '/'"),
        ("a/", "end with '/'"),
        ("a//b", "empty segment"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a b", "letters, digits"),
        ("-flag", "start with a letter or digit"),
        (".hidden", "start with a letter or digit"),
        ("a\\b", "'\\'"),
    ],
)
def test_invalid_names_say_which_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name(name)
    assert rule in info.value.rule
    assert repr(name) in str(info.value) or name == "x" * 201


@pytest.mark.parametrize("key", ["a", "a/b/c.bin", "données/模型/ß ü.bin", ".dotfile/x"])
def test_valid_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "a/./b", "a\x7fb", "é" * 600])
def test_invalid_keys(key: str) -> None:
    with pytest.raises(InvalidNameError):
        check_key(key)


def test_refs() -> None:
    assert parse_ref("3") == Ref("version", 3)
    assert parse_ref("latest") == Ref("latest", "latest")
    assert parse_ref("prod") == Ref("alias", "prod")
    digest = "sha256:" + "a" * 64
    assert parse_ref(digest) == Ref("digest", digest)


@pytest.mark.parametrize("ref", ["0", "sha256:abc", "-x", "a b", "x" * 70])
def test_invalid_refs(ref: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_ref(ref)


def test_full_and_short_addresses_agree() -> None:
    full = parse_address("dp://acme/models/nlp/bert@prod", tenant="other")
    short = parse_address("nlp/bert@prod", tenant="acme", kind="models")
    assert full == short == Address("acme", "models", "nlp/bert", Ref("alias", "prod"))
    assert str(full) == "dp://acme/models/nlp/bert@prod"
    assert parse_address("bert", tenant="t", kind="datasets").ref.kind == "latest"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("dp://acme/widgets/x@1", "kind must be one of"),
        ("dp://acme/models", "dp://<tenant>/<kind>/<name>@<ref>"),
        ("s3://bucket/key", "only address scheme"),
        ("a@1@2", "at most one '@'"),
        ("a@", "must be followed"),
        ("dp://Acme!/models/x", "tenant"),
        ("dp://acme/datasets/x@1", "expected 'models'"),
    ],
)
def test_invalid_addresses(text: str, rule: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        parse_address(text, tenant="acme", kind="models")
    assert rule in info.value.rule


def test_short_address_needs_a_kind() -> None:
    with pytest.raises(InvalidNameError, match="needs a kind"):
        parse_address("bert@1", tenant="acme")
