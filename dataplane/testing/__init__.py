"""Test kits that ship with dataplane, for this repository and for adapters outside it.

- :mod:`dataplane.testing.blob`: ``BlobStoreConformance``, the suite every blob adapter
  passes (needs ``pytest``);
- :mod:`dataplane.testing.features`: ``FeatureStoreConformance``, the suite every feature
  adapter passes (needs ``pytest``);
- :mod:`dataplane.testing.servers`: real HTTP endpoints for tests (moto's S3 server,
  fake-gcs-server) and helpers that create buckets on them;
- :mod:`dataplane.testing.faults`: ``FaultProxy``, an HTTP proxy that injects the
  transient faults a real server cannot be made to produce on demand.

Nothing is imported here, and the modules import their test-only dependencies inside
functions, so ``import dataplane.testing`` works on an install without them.
"""
