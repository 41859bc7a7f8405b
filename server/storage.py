"""Artifact store: content-hashed files in the data directory, written atomically.

A reader never sees a half-written file: bytes go to a temporary file in the same directory,
are fsynced, and the file is renamed into place. Names carry the SHA-256 of the content, so a
stored artifact can be verified and is never overwritten with different bytes.

Artifacts hold scrubbed text and models trained on it: directories are 0700 and files 0600
(:func:`private_dir`), whatever the process umask.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["ArtifactStore", "private_dir"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700; returns it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


class ArtifactStore:
    """Files under ``root``, addressed by kind and content hash."""

    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)

    def put(self, kind: str, data: bytes, *, suffix: str) -> tuple[str, str]:
        """Store ``data`` atomically.

        Args:
            kind: Sub-directory, e.g. ``"shards"`` or ``"models"``.
            data: The bytes to store.
            suffix: File extension including the dot.

        Returns:
            The path relative to the root, and the SHA-256 hex digest of the content.
        """
        digest = hashlib.sha256(data).hexdigest()
        directory = private_dir(self.root / kind)
        final = directory / f"{digest}{suffix}"
        if not final.exists():
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, FILE_MODE)  # mkstemp's default, said explicitly
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return str(final.relative_to(self.root)), digest

    def get(self, relpath: str, *, sha256: str | None = None) -> bytes:
        """Read an artifact, verifying its hash when given.

        Raises:
            FileNotFoundError: If the artifact is missing.
            ValueError: If the content does not match ``sha256``.
        """
        data = (self.root / relpath).read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"artifact {relpath} is corrupt (hash mismatch)")
        return data

    def delete(self, relpath: str) -> None:
        """Remove an artifact if present."""
        (self.root / relpath).unlink(missing_ok=True)
