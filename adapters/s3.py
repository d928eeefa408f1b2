"""S3 blob adapter (s3fs): ``s3://bucket/prefix`` on AWS or any S3-compatible endpoint.

MinIO, Ceph, R2 and moto are reached through the ``endpoint_url`` option. Options are
s3fs's own keyword arguments (``key``, ``secret``, ``token``, ``endpoint_url``,
``client_kwargs``, ...) plus ``part_size`` (bytes per multipart part, default 16 MiB;
a put from memory up to 128 MiB is one request, files and larger puts go in parts).
s3fs and botocore are told not to retry: dataplane's retry policy is the only one, so
the total time spent on an unreachable endpoint stays bounded and predictable.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from dataplane.blob.port import Capabilities, ObjectInfo, translate_os_error
from dataplane.errors import (
    DataplaneError,
    PermissionDeniedError,
    PreconditionFailedError,
    TransientError,
)
from dataplane.names import check_key
from dataplane.retry import RetryPolicy

from ._fsspec import FsspecBlobStore, check_options, pop_part_size, split_bucket_url

__all__ = ["S3BlobStore"]

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                   "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"}
CLIENT_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 12,  # a silent endpoint: 2 attempts fit the 20 s retry deadline
    # total_max_attempts counts the first try; botocore's max_attempts counts retries only
    "retries": {"total_max_attempts": 1, "mode": "standard"},
    # botocore >= 1.36 adds a CRC32 of every request body by default. Uploads are already
    # proven (SigV4 signs a SHA-256 of the body over HTTP, TLS carries it over HTTPS, and
    # dataplane checks what it wrote against its own digests), and the extra checksum is
    # computed on the one event-loop thread that carries every request: a bottleneck.
    "request_checksum_calculation": "when_required",
}


class S3BlobStore(FsspecBlobStore):
    """Objects under ``<bucket>/<prefix>/`` of an S3 (or S3-compatible) service."""

    capabilities = Capabilities(atomic_put_if_absent=True, server_side_copy=True,
                                request_concurrency=32)
    # One GET per whole read: s3fs splits objects over its 50 MiB block size into ranged
    # GETs that are not pinned to one ETag, so an overwrite between them tore the read.
    whole_read_options = {"max_concurrency": 1}

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any], retry: RetryPolicy | None
                 ) -> S3BlobStore:
        import s3fs

        root = split_bucket_url(url, "s3")
        part_size = pop_part_size(options)
        check_options(options, s3fs.S3FileSystem, "s3")
        config_kwargs = {**CLIENT_DEFAULTS, **options.pop("config_kwargs", {})}
        options.setdefault("session", _session_sending_bytes_as_they_are())
        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                               config_kwargs=config_kwargs, **options)
        fs.retries = 1  # a class attribute in s3fs; dataplane's policy does the retrying
        return cls(fs, url, root, part_size=part_size, retry=retry,
                   endpoint=options.get("endpoint_url"))

    def put_etag(self, data: bytes | bytearray | memoryview) -> str:
        """The ETag S3 gives ``data`` stored with :meth:`put`: the MD5 of the bytes for one
        request, else the MD5 of the parts' MD5s and ``-<parts>`` (without SSE-KMS). A
        caller that checked ``data`` can prove what was stored from the ETag alone."""
        single = self._single_put_md5(data)
        if single is not None:
            return single.hex()
        view = memoryview(data).cast("B")
        chunk = self.upload_chunksize(len(view))
        parts = [hashlib.md5(view[i:i + chunk], usedforsecurity=False).digest()
                 for i in range(0, len(view), chunk)]
        return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"

    def put_proven(self, key: str, data: bytes | bytearray | memoryview) -> bool:
        """:meth:`put`, and whether S3 is known to hold exactly ``data`` afterwards: a
        single-request put sends the bytes' MD5 (``Content-MD5``, which S3 checks on
        arrival) and S3 answered with that MD5 as the ETag. ``False`` (not an error) where
        that cannot be told: a multipart upload, or an ETag that is not an MD5 (SSE-KMS).
        The caller then reads the object back to prove it."""
        check_key(key)
        md5 = self._single_put_md5(data)
        info = self._call(f"put {self._where(key)}", lambda: self._put_with_md5(key, data, md5))
        return md5 is not None and info.etag == md5.hex()

    def _put(self, key: str, data: bytes | bytearray | memoryview) -> ObjectInfo:
        return self._put_with_md5(key, data, self._single_put_md5(data))

    def _single_put_md5(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """The MD5 of ``data`` when a put of it is one request (else ``None``)."""
        view = memoryview(data).cast("B")
        if len(view) >= 2 * self.upload_chunksize(len(view)):
            return None
        return hashlib.md5(view, usedforsecurity=False).digest()

    def _put_with_md5(self, key: str, data: bytes | bytearray | memoryview, md5: bytes | None
                      ) -> ObjectInfo:
        if md5 is None:
            return self._pipe(key, data)
        return self._pipe(key, data, ContentMD5=base64.b64encode(md5).decode("ascii"))

    def _list_page(self, prefix: str, start_after: str | None, limit: int) -> list[ObjectInfo]:
        """One real ListObjectsV2 page (or several, when ``limit`` exceeds S3's 1,000)."""
        bucket, _, base = self.root.partition("/")
        base = f"{base}/" if base else ""
        items: list[ObjectInfo] = []
        after = base + start_after if start_after is not None else ""
        while len(items) < limit:
            page = self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=base + prefix,
                                   StartAfter=after, MaxKeys=min(limit - len(items), 1000))
            contents = page.get("Contents", [])
            items.extend(
                ObjectInfo(key=obj["Key"][len(base):], size=obj["Size"],
                           etag=obj.get("ETag", "").strip('"') or None,
                           modified=obj.get("LastModified"))
                for obj in contents
            )
            if not page.get("IsTruncated") or not contents:
                break
            after = contents[-1]["Key"]
        return items

    def _is_unsatisfiable_range(self, error: Exception) -> bool:
        return _client_error(error)[1] in {"InvalidRange", "416"}

    def _translate(self, error: Exception, what: str) -> DataplaneError:
        return translate_s3_error(error, self._with_endpoint(what))


def _session_sending_bytes_as_they_are() -> Any:
    """An aiobotocore session whose S3 clients send a ``bytes`` body as it is.

    By default botocore wraps the body of every PutObject and UploadPart in a ``BytesIO``;
    aiohttp then copies that buffer and sends it 64 KiB at a time, all on the one event-loop
    thread that carries every request (~15% of a migration's time to S3). A ``bytes`` body
    is sent from where it lies instead (:func:`_send_body_in_pieces`); it is resent as it
    is if a request is retried. PutObject with ``Content-MD5`` is not hashed again for
    its signature (:func:`_let_content_md5_prove_the_body`).
    """
    from aiobotocore.session import get_session
    from botocore.handlers import convert_body_to_file_like_object

    session = get_session()
    for operation in ("PutObject", "UploadPart"):
        session.unregister(f"before-parameter-build.s3.{operation}",
                           convert_body_to_file_like_object)
        session.register(f"before-send.s3.{operation}", _send_body_in_pieces)
    session.register("before-sign.s3.PutObject", _let_content_md5_prove_the_body)
    return session


#: Bytes per write of a request body to the socket (see :func:`_send_body_in_pieces`).
BODY_PIECE = 2**20


def _send_body_in_pieces(request: Any, **_: Any) -> None:
    """Hand aiohttp a large ``bytes`` body as views of :data:`BODY_PIECE` bytes.

    Given the body whole, Python 3.11's socket transport copies it up to three times on
    the event-loop thread (joined to the headers, then what one ``send`` did not take is
    sliced off and buffered), each copy holding the GIL. Piece by piece, only what a
    ``send`` leaves over is buffered, and ``drain`` paces the writes.
    """
    body = request.body
    if isinstance(body, bytes | bytearray) and len(body) > BODY_PIECE:
        request.body = _piecewise_payload(body)


def _piecewise_payload(body: bytes | bytearray) -> Any:
    from aiohttp.payload import BytesPayload

    class PiecewiseBytesPayload(BytesPayload):
        async def write(self, writer: Any) -> None:
            await self.write_with_length(writer, None)

        async def write_with_length(self, writer: Any, content_length: int | None) -> None:
            view = memoryview(self._value)[:content_length]
            for start in range(0, len(view), BODY_PIECE):
                await writer.write(view[start:start + BODY_PIECE])

    return PiecewiseBytesPayload(body)


def _let_content_md5_prove_the_body(request: Any, **_: Any) -> None:
    """Sign a PutObject that carries ``Content-MD5`` without hashing its body again.

    Over plain HTTP botocore signs a SHA-256 of every body (over HTTPS it already skips
    that when a checksum header is sent). ``Content-MD5`` is itself a signed header and S3
    rejects a body that does not match it, so the body cannot be changed in transit
    either way; the SHA-256 is a second full pass over the bytes, on the one event-loop
    thread that carries every request. Requests without ``Content-MD5`` (parts of a
    multipart upload, puts-if-absent) keep their signed payload.
    """
    if "Content-MD5" not in request.headers:
        return
    config = request.context.get("client_config")
    if config is not None:
        request.context["client_config"] = _unsigned_payload_config(config)


def _unsigned_payload_config(config: Any) -> Any:
    """``config`` with ``s3.payload_signing_enabled = False`` (one copy per client)."""
    cached = getattr(config, "_dataplane_unsigned_payload", None)
    if cached is None:
        from botocore.config import Config

        s3 = dict(getattr(config, "s3", None) or {}, payload_signing_enabled=False)
        cached = config.merge(Config(s3=s3))
        config._dataplane_unsigned_payload = cached
    return cached


def _client_error(error: BaseException) -> tuple[int | None, str | None]:
    """The HTTP status and error code of the botocore ClientError behind ``error``."""
    for exc in _chain(error):
        response = getattr(exc, "response", None)
        if isinstance(response, dict) and "Error" in response:
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return status, response["Error"].get("Code")
    return None, None


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def translate_s3_error(error: Exception, what: str) -> DataplaneError:
    """Map s3fs/botocore/aiohttp exceptions to dataplane's errors."""
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import (
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    status, code = _client_error(error)
    names = {type(exc).__name__ for exc in _chain(error)}
    if status in TRANSIENT_STATUS or code in TRANSIENT_CODES:
        return TransientError(f"{what}: {code or status}: {error}")
    if any(isinstance(e, BotoConnectionError | HTTPClientError) for e in _chain(error)) or (
        names & {"ClientConnectorError", "ServerDisconnectedError", "ClientOSError",
                 "FSTimeoutError", "TimeoutError", "ClientPayloadError"}
    ):
        return TransientError(f"{what}: cannot reach the endpoint: {error}")
    if any(isinstance(e, NoCredentialsError | PartialCredentialsError) for e in _chain(error)):
        return PermissionDeniedError(f"{what}: no usable S3 credentials: {error}")
    if code == "PreconditionFailed" and not isinstance(error, FileExistsError):
        return PreconditionFailedError(f"{what}: precondition failed")
    return translate_os_error(error, what)
