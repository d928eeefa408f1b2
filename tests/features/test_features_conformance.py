"""Every feature adapter passes the same conformance suite, on every online store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from feature_support import factory

from dataplane import DataPlane
from dataplane.testing.features import FeatureStoreConformance


class TestNativeSQLite(FeatureStoreConformance):
    @pytest.fixture
    def plane_factory(self, tmp_path: Path) -> Callable[[str], DataPlane]:
        return factory(tmp_path, adapter="native")


class TestNativeRedis(FeatureStoreConformance):
    @pytest.fixture
    def plane_factory(self, tmp_path: Path, redis_url: str) -> Callable[[str], DataPlane]:
        return factory(tmp_path, adapter="native", online_url=redis_url)


class TestFeastSQLite(FeatureStoreConformance):
    entities_during_materialize = 1000

    @pytest.fixture
    def plane_factory(self, tmp_path: Path) -> Callable[[str], DataPlane]:
        return factory(tmp_path, adapter="feast")


class TestFeastRedis(FeatureStoreConformance):
    entities_during_materialize = 1000

    @pytest.fixture
    def plane_factory(self, tmp_path: Path, redis_url: str) -> Callable[[str], DataPlane]:
        return factory(tmp_path, adapter="feast", online_url=redis_url)
