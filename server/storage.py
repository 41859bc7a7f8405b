"""Artifact store: content-hashed blobs, on the local disk or in an object store.

Artifacts (scrubbed shards, trained models) are addressed by kind and the SHA-256 of their
content: ``<kind>/<sha256><suffix>``. A stored artifact can therefore be verified on every read
and is never overwritten with different bytes, and the same relative names work in both
backends, so moving a deployment from a volume to a bucket is a copy of the directory tree.

- :class:`ArtifactStore` keeps them in a directory (the data volume). A reader never sees a
  half-written file: bytes go to a temporary file in the same directory, are fsynced, and the
  file is renamed into place. Directories are 0700 and files 0600 (:func:`private_dir`),
  whatever the process umask, because artifacts hold scrubbed text and models trained on it.
- :class:`ObjectArtifactStore` keeps them in an object store through ``fsspec`` (``s3://``
  with ``s3fs``; any fsspec protocol whose package is installed). Several replicas then share
  artifacts without a ReadWriteMany volume. An object PUT is atomic (readers see the whole
  object or none), which replaces the rename. Access control and encryption at rest are the
  bucket's: grant the service alone, and turn on server-side encryption (``options`` can ask
  for it per request, e.g. ``{"s3_additional_kwargs": {"ServerSideEncryption": "aws:kms"}}``).

Both keep a local working directory, :attr:`ArtifactStore.root`, for what one process writes
while it works (training checkpoints). With an object store it is scratch space of the pod: a
job whose pod is lost is not resumed by another replica but charged its full reservation, the
safe bound the job queue applies to any job cut off without a checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ArtifactStore",
    "ArtifactStoreUnavailable",
    "ObjectArtifactStore",
    "StagedArtifact",
    "open_artifact_store",
    "private_dir",
]

DIR_MODE = 0o700
FILE_MODE = 0o600

_PROBE = b"privsynth artifact store probe\n"
"""Written (once, content-addressed) and read back at start-up: proves the store is usable."""


class ArtifactStoreUnavailable(OSError):
    """The configured object store cannot be reached, read or written (raised at start-up)."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700; returns it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def _check_kind(kind: str) -> str:
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"artifact kind must be one plain path segment, got {kind!r}")
    return kind


def _digest_name(kind: str, data: bytes, suffix: str) -> tuple[str, str]:
    """The relative name ``<kind>/<sha256><suffix>`` of ``data``, and its digest."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{_check_kind(kind)}/{digest}{suffix}", digest


def _verified(relpath: str, data: bytes, sha256: str | None) -> bytes:
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"artifact {relpath} is corrupt (hash mismatch)")
    return data


class StagedArtifact:
    """An artifact written piece by piece to a local file, hashed as it goes.

    A large artifact (a 1 GiB upload's scrubbed shard) never has to be held in memory: it is
    written to a temporary file in the store's working directory and only :meth:`commit`
    stores it under its content's name. Leaving the ``with`` block without committing (an
    error, a cancelled upload) removes the file.

    Args:
        store: Where :meth:`commit` puts it.
        kind: As for :meth:`ArtifactStore.put`.
        suffix: As for :meth:`ArtifactStore.put`.
    """

    def __init__(self, store: ArtifactStore, kind: str, suffix: str) -> None:
        directory = private_dir(store.root / _check_kind(kind))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        self._store, self._kind, self._suffix = store, kind, suffix
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        """Bytes written so far."""

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        self._fh.write(data)
        self._hash.update(data)
        self.size += len(data)

    def commit(self) -> tuple[str, str]:
        """Store what was written; returns the relative path and the SHA-256 hex digest."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.chmod(self._tmp, FILE_MODE)  # mkstemp's default, said explicitly
        digest = self._hash.hexdigest()
        relpath = f"{self._kind}/{digest}{self._suffix}"
        try:
            self._store._adopt(self._tmp, relpath)
        finally:
            self._tmp.unlink(missing_ok=True)
        return relpath, digest

    def discard(self) -> None:
        """Drop what was written (idempotent; nothing after a commit)."""
        with contextlib.suppress(OSError):  # closing flushes, which fails on a full disk
            self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> StagedArtifact:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


STALE_STAGING_S = 6 * 3600.0
"""A staged file this old is left over from a process that died mid-upload (an upload of the
largest dataset takes minutes): it is removed when a store is opened."""


class ArtifactStore:
    """Artifacts as files under ``root``, addressed by kind and content hash."""

    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)
        self._remove_stale_staging()

    def _remove_stale_staging(self) -> None:
        """Delete staged files a killed process left behind (up to a dataset's size each).

        Only old ones: another live replica on a shared volume may be staging right now.
        """
        cutoff = time.time() - STALE_STAGING_S
        for staged in self.root.glob("*/.tmp-*"):
            with contextlib.suppress(OSError):  # gone already, or not ours to remove
                if staged.stat().st_mtime < cutoff:
                    staged.unlink()

    @property
    def location(self) -> str:
        """Where artifacts live, for start-up logs (no credentials)."""
        return str(self.root)

    def put(self, kind: str, data: bytes, *, suffix: str) -> tuple[str, str]:
        """Store ``data`` atomically.

        Args:
            kind: Sub-directory, e.g. ``"shards"`` or ``"models"``.
            data: The bytes to store.
            suffix: File extension including the dot.

        Returns:
            The path relative to the root, and the SHA-256 hex digest of the content.
        """
        relpath, digest = _digest_name(kind, data, suffix)
        if (self.root / relpath).exists():
            return relpath, digest
        with self.stage(kind, suffix=suffix) as staged:
            staged.write(data)
            return staged.commit()

    def stage(self, kind: str, *, suffix: str) -> StagedArtifact:
        """An artifact to write piece by piece and then commit (see :class:`StagedArtifact`)."""
        return StagedArtifact(self, kind, suffix)

    def _adopt(self, local: Path, relpath: str) -> None:
        """Move the complete, fsynced file ``local`` (in the same directory) into place."""
        final = self.root / relpath
        if not final.exists():
            os.replace(local, final)

    def get(self, relpath: str, *, sha256: str | None = None) -> bytes:
        """Read an artifact, verifying its hash when given.

        Raises:
            FileNotFoundError: If the artifact is missing.
            ValueError: If the content does not match ``sha256``.
        """
        return _verified(relpath, (self.root / relpath).read_bytes(), sha256)

    def size(self, relpath: str) -> int:
        """Bytes of an artifact.

        Raises:
            FileNotFoundError: If the artifact is missing.
        """
        return (self.root / relpath).stat().st_size

    def delete(self, relpath: str) -> None:
        """Remove an artifact if present."""
        (self.root / relpath).unlink(missing_ok=True)


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part, safe to log and to put in an error."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class ObjectArtifactStore(ArtifactStore):
    """Artifacts as objects under a URL prefix, e.g. ``s3://bucket/privsynth``, via fsspec.

    The constructor checks the store once (writes a small content-addressed probe object and
    reads it back), so a wrong bucket, endpoint or credential stops the server at start-up
    with a clear error instead of failing the first upload.

    Args:
        url: The prefix under which ``<kind>/<sha256><suffix>`` objects are kept.
        scratch: Local working directory (:attr:`ArtifactStore.root`) for checkpoints.
        options: Keyword arguments for the fsspec filesystem, e.g.
            ``{"endpoint_url": "http://minio:9000"}`` for an S3-compatible server. Credentials
            are best left to the backend's own environment (``AWS_ACCESS_KEY_ID`` /
            ``AWS_SECRET_ACCESS_KEY``, or workload identity) than put here.

    Raises:
        ArtifactStoreUnavailable: The store cannot be reached, read or written.
        ValueError: ``url`` has no protocol, or fsspec knows none by that name.
    """

    def __init__(
        self, url: str, *, scratch: Path, options: Mapping[str, Any] | None = None
    ) -> None:
        import fsspec  # type: ignore[import-untyped]
        from fsspec.core import url_to_fs  # type: ignore[import-untyped]

        super().__init__(scratch)
        protocol = urlsplit(url).scheme
        if not protocol or protocol == "file":
            raise ValueError("an object store URL names its protocol, e.g. s3://bucket/prefix")
        if protocol not in fsspec.available_protocols():
            raise ValueError(f"fsspec knows no protocol {protocol!r}")
        self.url = url.rstrip("/")
        kwargs = {"skip_instance_cache": True, **dict(options or {})}
        try:
            self.fs, self._prefix = url_to_fs(self.url, **kwargs)
        except ImportError as exc:
            raise ValueError(
                f"the {protocol}:// artifact store needs {exc.name or 'its fsspec backend'}: "
                "install privsynth[s3] (s3fs) or the backend for that protocol"
            ) from None
        self._prefix = self._prefix.rstrip("/")
        try:
            probe, digest = self.put("probe", _PROBE, suffix=".txt")
            self.get(probe, sha256=digest)
        except (OSError, ValueError) as exc:
            raise ArtifactStoreUnavailable(
                f"artifact store {self.location} is not usable: {type(exc).__name__}: {exc}"
            ) from None

    @property
    def location(self) -> str:
        """The store's URL without credentials."""
        return _without_credentials(self.url)

    def _key(self, relpath: str) -> str:
        if relpath.startswith("/") or ".." in relpath.split("/"):
            raise ValueError(f"artifact path {relpath!r} leaves the store")
        return f"{self._prefix}/{relpath}"

    def put(self, kind: str, data: bytes, *, suffix: str) -> tuple[str, str]:
        """Store ``data`` as one object (an object PUT is atomic); see :meth:`ArtifactStore.put`."""
        relpath, digest = _digest_name(kind, data, suffix)
        key = self._key(relpath)
        # Content-addressed: an existing object already holds these bytes. Two replicas that
        # store the same artifact at once write the same bytes, whichever lands last.
        if not self.fs.exists(key):
            self.fs.pipe_file(key, data)
        return relpath, digest

    def _adopt(self, local: Path, relpath: str) -> None:
        """Upload the staged file as one object (fsspec streams it from disk)."""
        key = self._key(relpath)
        if not self.fs.exists(key):
            self.fs.put_file(str(local), key)

    def get(self, relpath: str, *, sha256: str | None = None) -> bytes:
        """Read an object, verifying its hash when given; see :meth:`ArtifactStore.get`."""
        data = self.fs.cat_file(self._key(relpath))
        return _verified(relpath, bytes(data), sha256)

    def size(self, relpath: str) -> int:
        """Bytes of an object; see :meth:`ArtifactStore.size`."""
        return int(self.fs.size(self._key(relpath)))

    def delete(self, relpath: str) -> None:
        """Remove an object if present."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._key(relpath))


def open_artifact_store(
    scratch: Path, url: str = "", options: Mapping[str, Any] | None = None
) -> ArtifactStore:
    """The configured store: an object store when ``url`` is set, else ``scratch`` itself.

    Args:
        scratch: The local artifacts directory (on the data volume).
        url: Object store prefix (``PRIVSYNTH_ARTIFACT_STORE_URL``); empty keeps artifacts in
            ``scratch``.
        options: fsspec filesystem options (``PRIVSYNTH_ARTIFACT_STORE_OPTIONS``).
    """
    if not url:
        return ArtifactStore(scratch)
    return ObjectArtifactStore(url, scratch=scratch, options=options)
