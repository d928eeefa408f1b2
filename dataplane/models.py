"""Model artifacts: any tree of files, published as immutable, verified versions.

``plane.models`` is a :class:`ModelStore`. Everything but :meth:`ModelStore.publish`
(resolve, fetch, open, aliases, versions, list, delete) comes from
:class:`~dataplane.artifacts.ArtifactStore`, which datasets share.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .artifacts import ArtifactStore, Version
from .errors import InvalidSourceError, NotFoundError

__all__ = ["ModelStore", "collect_sources"]


class ModelStore(ArtifactStore):
    """Versions of models: publish a file or a folder, get the exact bytes back anywhere."""

    def publish(self, name: str, source: str | os.PathLike[str], *,
                metadata: Mapping[str, Any] | None = None,
                aliases: Sequence[str] = ()) -> Version:
        """Publish ``source`` (a file or a folder) as the next version of ``name``.

        The version becomes visible only once every file is uploaded and the catalog
        commit succeeds; ``metadata`` may carry lineage (``{"datasets": [...],
        "checkpoint": ...}``), which ``dataplane show`` displays.
        """
        return self.commit_files(name, collect_sources(Path(source)), metadata=metadata,
                                 aliases=aliases)


def collect_sources(source: Path) -> list[tuple[str, Path]]:
    """``(path in version, local file)`` for a file or every file under a folder.

    Refuses a missing source, an empty folder, and any symlink that resolves outside the
    source folder (a link inside it is followed and published as a regular file).
    """
    if not source.exists():
        raise NotFoundError(f"source path {source} does not exist")
    if source.is_file():
        return [(source.name, source)]
    root = source.resolve()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        folder = Path(dirpath)
        for entry in sorted([*dirnames, *filenames]):
            path = folder / entry
            if path.is_symlink():
                _check_link(path, root)
            if path.is_file():
                found.append((path.relative_to(source).as_posix(), path))
    if not found:
        raise InvalidSourceError(f"source folder {source} holds no files to publish")
    return found


def _check_link(path: Path, root: Path) -> None:
    try:
        target = path.resolve(strict=True)
    except (RuntimeError, OSError) as error:  # a loop, or a link to nothing
        raise InvalidSourceError(f"symlink {path} cannot be followed: {error}") from None
    if not target.is_relative_to(root):
        raise InvalidSourceError(f"symlink {path} points outside the source folder ({target})")
    if target.is_dir():
        raise InvalidSourceError(f"symlink {path} points to a folder; only files are published")
