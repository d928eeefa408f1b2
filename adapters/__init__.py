"""dataplane's storage adapters, installed as the ``dataplane_adapters`` package.

One module per backend, each implementing :class:`dataplane.blob.BlobStore`:
``local`` (file://), ``memory`` (memory://), ``s3`` (s3://, any S3-compatible endpoint),
``gcs`` (gs:// and gcs://). The registry in :mod:`dataplane.blob.registry` imports them
lazily by URL scheme; nothing in the core imports them directly.
"""
