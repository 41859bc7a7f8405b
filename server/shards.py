"""A dataset's scrubbed shard read back as training records.

The shard is the only copy of a dataset's text: JSON lines of scrubbed ``text``, optional
``label`` and the keyed hash of the ``user`` id, written once by ingest and checked against its
content hash on every read, so a training run never trains on a shard that changed.
"""

from __future__ import annotations

import json

from privsynth.models.dp_train import Example
from privsynth.server.db import DatasetRow
from privsynth.server.storage import ArtifactStore

__all__ = ["read_examples"]


def read_examples(store: ArtifactStore, dataset: DatasetRow) -> list[Example]:
    """The dataset's scrubbed records, checked against the shard's content hash."""
    data = store.get(dataset.shard_path, sha256=dataset.content_sha256)
    examples = []
    for line in data.splitlines():
        if line.strip():
            obj = json.loads(line)
            examples.append(Example(text=obj["text"], label=obj.get("label"), user=obj.get("user")))
    return examples
