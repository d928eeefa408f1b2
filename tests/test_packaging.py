"""The distribution ships every subpackage and maps adapters/ to dataplane_adapters."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "dataplane").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert config["package-dir"] == {"dataplane_adapters": "adapters"}


def test_adapters_are_installed_as_dataplane_adapters() -> None:
    import dataplane_adapters.local

    assert Path(dataplane_adapters.local.__file__).parent == REPO / "adapters"
