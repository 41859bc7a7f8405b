"""The artifact store on a real S3-compatible server (moto's standalone server over HTTP).

``s3fs`` talks S3 over HTTP to moto's server, started in this process on a free port: the
same requests a bucket on AWS, MinIO or Ceph receives. Two stores over one bucket stand for
two replicas without a shared volume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("moto.server", reason="moto[s3] + flask are dev dependencies")
pytest.importorskip("s3fs", reason="s3fs is the privsynth[s3] extra")

from privsynth.server.storage import (
    ArtifactStore,
    ArtifactStoreUnavailable,
    ObjectArtifactStore,
    open_artifact_store,
)
from s3_server import BUCKET, SECRET, S3Endpoint, s3_endpoint


@pytest.fixture(scope="module")
def endpoint() -> Iterator[S3Endpoint]:
    with s3_endpoint() as running:
        yield running


def _store(endpoint: S3Endpoint, tmp_path: Path, prefix: str = "replicas") -> ObjectArtifactStore:
    return ObjectArtifactStore(
        f"s3://{BUCKET}/{prefix}", scratch=tmp_path / "scratch", options=endpoint.options()
    )


def test_round_trip_with_the_local_names(endpoint: S3Endpoint, tmp_path: Path) -> None:
    store = _store(endpoint, tmp_path, "round-trip")
    rel, digest = store.put("shards", b"scrubbed\n", suffix=".jsonl")
    assert digest == hashlib.sha256(b"scrubbed\n").hexdigest()
    # The same relative name as on a volume: rows stay valid when artifacts move to a bucket.
    assert (rel, digest) == ArtifactStore(tmp_path / "local").put(
        "shards", b"scrubbed\n", suffix=".jsonl"
    )
    assert store.get(rel, sha256=digest) == b"scrubbed\n"
    assert store.put("shards", b"scrubbed\n", suffix=".jsonl") == (rel, digest)  # idempotent
    store.delete(rel)
    with pytest.raises(FileNotFoundError):
        store.get(rel)
    store.delete(rel)  # deleting twice is fine
    # Nothing of the artifact went to the local scratch directory.
    assert not list((tmp_path / "scratch").rglob("*.jsonl"))


def test_a_staged_artifact_is_uploaded_from_disk(endpoint: S3Endpoint, tmp_path: Path) -> None:
    store = _store(endpoint, tmp_path, "staged")
    with store.stage("shards", suffix=".jsonl") as staged:
        staged.write(b"scrubbed ")
        staged.write(b"in two writes\n")
        rel, digest = staged.commit()
    assert digest == hashlib.sha256(b"scrubbed in two writes\n").hexdigest()
    assert store.get(rel, sha256=digest) == b"scrubbed in two writes\n"
    assert not [p for p in (tmp_path / "scratch" / "shards").iterdir()]  # staged file removed


def test_two_replicas_share_artifacts_without_a_shared_volume(
    endpoint: S3Endpoint, tmp_path: Path
) -> None:
    replica_a = _store(endpoint, tmp_path / "a", "shared")
    replica_b = _store(endpoint, tmp_path / "b", "shared")
    rel, digest = replica_a.put("models", b"\x00weights\xff" * 1000, suffix=".pt")
    assert replica_b.get(rel, sha256=digest) == b"\x00weights\xff" * 1000
    replica_b.delete(rel)
    with pytest.raises(FileNotFoundError):
        replica_a.get(rel)


def test_a_changed_object_is_detected(endpoint: S3Endpoint, tmp_path: Path) -> None:
    store = _store(endpoint, tmp_path, "tamper")
    rel, digest = store.put("models", b"good", suffix=".pt")
    endpoint.client().put_object(Bucket=BUCKET, Key=f"tamper/{rel}", Body=b"evil")
    with pytest.raises(ValueError, match="corrupt"):
        store.get(rel, sha256=digest)


def test_paths_cannot_leave_the_prefix(endpoint: S3Endpoint, tmp_path: Path) -> None:
    store = _store(endpoint, tmp_path, "jail")
    with pytest.raises(ValueError, match="leaves the store"):
        store.get("../round-trip/shards/x.jsonl")
    with pytest.raises(ValueError, match="plain path segment"):
        store.put("../x", b"data", suffix=".bin")


def test_a_missing_bucket_stops_start_up_without_leaking_the_secret(
    endpoint: S3Endpoint, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactStoreUnavailable) as info:
        ObjectArtifactStore(
            "s3://no-such-bucket/p", scratch=tmp_path / "s", options=endpoint.options()
        )
    assert "s3://no-such-bucket/p" in str(info.value)
    assert SECRET not in str(info.value)


def test_open_artifact_store_chooses_by_url(endpoint: S3Endpoint, tmp_path: Path) -> None:
    local = open_artifact_store(tmp_path / "artifacts")
    assert type(local) is ArtifactStore
    assert local.location == str(tmp_path / "artifacts")
    remote = open_artifact_store(
        tmp_path / "artifacts", f"s3://{BUCKET}/opened", endpoint.options()
    )
    assert isinstance(remote, ObjectArtifactStore)
    assert remote.location == f"s3://{BUCKET}/opened"
    assert remote.root == tmp_path / "artifacts"  # checkpoints stay in the pod's scratch
    with pytest.raises(ValueError, match="protocol"):
        open_artifact_store(tmp_path, "bucket/without/protocol")
    with pytest.raises(ValueError, match="protocol"):
        open_artifact_store(tmp_path, "nosuchproto://bucket/x")
