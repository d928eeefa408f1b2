"""Versioned artifacts: what models and datasets share (one implementation of versions,
aliases, digests, verified reads, the node cache and tombstones).

Publishing, in this order (``ArtifactStore.commit_files``):

1. hash every source file (per-file and per-chunk SHA-256), remembering its size and
   modification time;
2. upload each file to a content-addressed key ``<tenant>/<kind>/<name>/objects/<sha256>``
   on the routed backend, in parallel;
3. check that no source file changed while it was read or uploaded;
4. commit the version (manifest, digest, location, aliases) in one catalog transaction.

A crash or error before step 4 leaves no visible version; what it uploaded is an object
no version references, which :meth:`ArtifactStore.gc` removes after the grace period.
Every read (``fetch``, ``open``) verifies each chunk against the manifest before handing
out or caching a byte.
"""

from __future__ import annotations

import builtins  # ArtifactStore.list shadows the builtin inside the class body
import io
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blob import BlobStore
from ..cache import NodeCache
from ..catalog import AliasChange, VersionRecord
from ..errors import ConflictError, InvalidSourceError, NotFoundError
from ..identity import current_actor
from ..names import Address, Kind, check_alias, check_name
from .manifest import DEFAULT_CHUNK_SIZE, FileEntry, Manifest, hash_stream
from .reader import VerifiedReader
from .transfer import DEFAULT_WORKERS, Progress, download_to_cache, upload_files

if TYPE_CHECKING:
    from ..facade import DataPlane

__all__ = ["ArtifactStore", "FileInfo", "Version"]


@dataclass(frozen=True)
class FileInfo:
    """One file of a version as users see it."""

    path: str
    size: int
    digest: str


@dataclass(frozen=True)
class Version:
    """An immutable, committed version of a model or dataset."""

    tenant: str
    kind: str
    name: str
    version: int
    digest: str
    files: tuple[FileInfo, ...]
    metadata: Mapping[str, Any]
    created_at: datetime
    created_by: str
    manifest: Manifest = field(repr=False)
    record: VersionRecord = field(repr=False)

    @property
    def uri(self) -> str:
        """The version's stable logical address, ``dp://tenant/kind/name@N``."""
        return f"dp://{self.tenant}/{self.kind}/{self.name}@{self.version}"

    @property
    def size(self) -> int:
        return self.manifest.size

    @classmethod
    def from_record(cls, record: VersionRecord) -> Version:
        manifest = Manifest.from_json(record.manifest)
        files = tuple(FileInfo(f.path, f.size, f.digest) for f in manifest.files)
        return cls(record.tenant, record.kind, record.name, record.number, record.digest, files,
                   record.metadata, record.created_at, record.created_by, manifest, record)


@dataclass(frozen=True)
class _Source:
    path: str
    local: Path
    stat: os.stat_result


class ArtifactStore:
    """Versions of one kind (``models`` or ``datasets``) in one plane's current tenant."""

    def __init__(self, plane: DataPlane, kind: Kind, cache: NodeCache,
                 workers: int = DEFAULT_WORKERS, chunk_size: int = DEFAULT_CHUNK_SIZE):
        self.plane = plane
        self.kind = kind
        self.cache = cache
        self.workers = workers
        self.chunk_size = chunk_size
        self.progress: Progress | None = None  # set by the CLI to drive a progress bar

    # ------------------------------------------------------------- lookups
    def address(self, ref: str) -> Address:
        """Parse ``name@ref`` or a ``dp://`` address of this kind."""
        return self.plane.address(ref, self.kind)

    def resolve(self, ref: str) -> Version:
        """The committed version ``ref`` names (``NotFoundError`` names the address)."""
        address = self.address(ref)
        record = self.plane.catalog.resolve(address.tenant, address.kind, address.name,
                                            address.ref)
        return Version.from_record(record)

    def versions(self, name: str, *, include_deleted: bool = False) -> list[Version]:
        """Every version of ``name``, oldest first."""
        records = self.plane.catalog.versions(self.plane.tenant, self.kind, check_name(name),
                                              include_deleted=include_deleted)
        return [Version.from_record(r) for r in records]

    def list(self, prefix: str | None = None) -> list[Version]:
        """The latest live version of every name (optionally starting with ``prefix``)."""
        names = self.plane.catalog.names(self.plane.tenant, self.kind, prefix)
        return [self.resolve(n.name) for n in names if n.latest_version is not None]

    # -------------------------------------------------------------- aliases
    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        """Point ``alias`` at ``version`` of ``name`` (one transaction, with history)."""
        return self.plane.catalog.set_alias(self.plane.tenant, self.kind, check_name(name),
                                            check_alias(alias), version, actor=current_actor())

    def remove_alias(self, name: str, alias: str) -> AliasChange:
        return self.plane.catalog.remove_alias(self.plane.tenant, self.kind, check_name(name),
                                               check_alias(alias), actor=current_actor())

    def aliases(self, name: str) -> dict[str, int]:
        return self.plane.catalog.aliases(self.plane.tenant, self.kind, check_name(name))

    def alias_history(self, name: str, alias: str | None = None
                      ) -> builtins.list[AliasChange]:
        return self.plane.catalog.alias_history(self.plane.tenant, self.kind, check_name(name),
                                                alias)

    def delete(self, ref: str) -> Version:
        """Tombstone a version: it disappears from resolve; its bytes go at ``gc``."""
        version = self.resolve(ref)
        record = self.plane.catalog.tombstone(version.tenant, self.kind, version.name,
                                              version.version, actor=current_actor())
        return Version.from_record(record)

    # ---------------------------------------------------------------- reads
    def fetch(self, ref: str, dest: str | os.PathLike[str] | None = None,
              files: Sequence[str] | None = None) -> Path:
        """A verified local copy of the version (or of ``files`` of it).

        With no ``dest`` the files land in the node cache and the returned folder is shared
        (read-only); a second call is a cache hit with no blob I/O. With ``dest`` the
        files are copied there (each via a partial file and a rename).
        """
        version = self.resolve(ref)
        selected = self._select(version, files)
        if dest is None:
            view = self.cache.view_path(version.digest, files)
            if not view.is_dir():
                self._fill_cache(version, selected)
                self._build_view(selected, view)
            return view
        self._fill_cache(version, selected)
        return self._copy_out(selected, Path(dest))

    def open(self, ref: str, path: str) -> io.BufferedReader:
        """A seekable binary reader of one file that verifies every chunk it returns."""
        version = self.resolve(ref)
        entry = self._select(version, [path])[0]
        store = self._store_of(version)
        return io.BufferedReader(VerifiedReader(store, entry, self._describe(version, store)),
                                 buffer_size=entry.chunk_size)

    def _select(self, version: Version, files: Sequence[str] | None) -> tuple[FileEntry, ...]:
        try:
            return version.manifest.select(files)
        except KeyError as missing:
            raise NotFoundError(f"{version.uri} has no file {missing.args[0]!r}") from None

    def _fill_cache(self, version: Version, entries: Sequence[FileEntry]) -> None:
        store = self._store_of(version)
        download_to_cache(store, entries, self.cache, self._describe(version, store),
                          self.workers, **self._progress_kw())

    def _build_view(self, entries: Sequence[FileEntry], view: Path) -> None:
        partial = self.cache.partial_path("view")
        partial.mkdir()
        for entry in entries:
            self.cache.link_blob(entry.digest, partial / entry.path)
        self.cache.publish_view(partial, view)

    def _copy_out(self, entries: Sequence[FileEntry], dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            target = dest / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            shutil.copyfile(self.cache.blob_path(entry.digest), partial)
            os.replace(partial, target)
        return dest

    def _store_of(self, version: Version) -> BlobStore:
        active = [loc for loc in version.record.locations if loc.state == "active"]
        if not active:
            raise NotFoundError(f"{version.uri} has no active location")
        return self.plane.store(active[0].backend)

    def _describe(self, version: Version, store: BlobStore) -> Any:
        return lambda entry: f"{version.uri}:{entry.path} ({store.url.rstrip('/')}/{entry.key})"

    # --------------------------------------------------------------- writes
    def commit_files(self, name: str, sources: Sequence[tuple[str, Path]], *,
                     metadata: Mapping[str, Any] | None = None, aliases: Sequence[str] = (),
                     extra: Mapping[str, Any] | None = None) -> Version:
        """Hash, upload and commit ``(path in version, local file)`` pairs as a new version."""
        name = check_name(name)
        if isinstance(aliases, str):  # one alias given as a bare string
            aliases = [aliases]
        aliases = [check_alias(alias) for alias in aliases]
        metadata = _json_metadata(metadata)
        backend = self.plane.route(self.kind, name)
        store = self.plane.store(backend)
        staged = [_stat_source(path, local) for path, local in sources]
        entries = self._hash_all(name, staged)
        try:
            upload_files(store, list(zip(entries, [s.local for s in staged], strict=True)),
                         self.workers, **self._progress_kw())
        except Exception:
            _check_unchanged(staged)  # a source removed or changed meanwhile is the cause
            raise
        _check_unchanged(staged)
        manifest = Manifest.build(entries, extra)
        record = self.plane.catalog.commit_version(
            self.plane.tenant, self.kind, name, digest=manifest.digest,
            manifest=manifest.to_json(), metadata=metadata,
            created_by=current_actor(), locations=[(backend, self.prefix(name))],
            aliases=aliases,
        )
        return Version.from_record(record)

    def _progress_kw(self) -> dict[str, Progress]:
        return {"progress": self.progress} if self.progress else {}

    def prefix(self, name: str) -> str:
        """The blob-key prefix under which ``name``'s objects live on every backend."""
        return f"{self.plane.tenant}/{self.kind}/{name}"

    def _hash_all(self, name: str, staged: Sequence[_Source]) -> builtins.list[FileEntry]:
        def one(source: _Source) -> FileEntry:
            try:
                with open(source.local, "rb") as file:
                    size, digest, chunks = hash_stream(file, self.chunk_size)
            except FileNotFoundError:
                raise ConflictError(f"source file {source.local} was removed during publish; "
                                    "nothing was committed") from None
            key = f"{self.prefix(name)}/objects/{digest.removeprefix('sha256:')}"
            return FileEntry(source.path, size, digest, key, self.chunk_size, chunks)

        with ThreadPoolExecutor(max_workers=max(1, min(4, len(staged)))) as pool:
            return list(pool.map(one, staged))


def _stat_source(path: str, local: Path) -> _Source:
    try:
        return _Source(path, local, local.stat())
    except FileNotFoundError:
        raise ConflictError(f"source file {local} was removed during publish; "
                            "nothing was committed") from None


def _json_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata as stored: it must be JSON (no NaN), checked before any byte moves."""
    value = dict(metadata or {})
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidSourceError(f"metadata must be plain JSON values: {error}") from None
    return value


def _check_unchanged(staged: Sequence[_Source]) -> None:
    for source in staged:
        try:
            now = source.local.stat()
        except FileNotFoundError:
            raise ConflictError(f"source file {source.local} was removed during publish; "
                                "nothing was committed") from None
        before = source.stat
        if (now.st_size, now.st_mtime_ns, now.st_ino) != (
                before.st_size, before.st_mtime_ns, before.st_ino):
            raise ConflictError(f"source file {source.local} changed during publish; "
                                "nothing was committed")


def age_seconds(modified: datetime | None) -> float:
    """Seconds since ``modified``; 0 when unknown, so GC never deletes what it can't date."""
    return 0.0 if modified is None else time.time() - modified.timestamp()
