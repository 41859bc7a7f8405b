"""Generation servicer: streams synthetic records, each with its provenance."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from privsynth.client.pb import common_pb2, generation_pb2, generation_pb2_grpc
from privsynth.server.api.auth import identity_of
from privsynth.server.api.names import parse_name
from privsynth.server.runtime import Runtime
from privsynth.server.serving.generation import GenerationRequest, ModelCache, generate

__all__ = ["GenerationServicer"]


class GenerationServicer(generation_pb2_grpc.GenerationServicer):
    """privsynth.v1.Generation."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.cache = ModelCache()

    def Generate(  # noqa: N802
        self, request: generation_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[generation_pb2.SyntheticRecord]:
        """Sample records; stops early if the caller goes away."""
        req = GenerationRequest(
            model_id=parse_name("models", request.model, field="model"),
            count=request.count,
            temperature=request.temperature if request.HasField("temperature") else 1.0,
            top_p=request.top_p if request.HasField("top_p") else 0.95,
            max_tokens=request.max_tokens if request.HasField("max_tokens") else None,
            seed=request.seed,
            label=request.label if request.HasField("label") else None,
            guidance=request.guidance if request.HasField("guidance") else 0.0,
            tenant=identity_of(context).tenant_scope,
        )
        row, samples = generate(self.runtime, self.cache, req)
        provenance = common_pb2.Provenance(
            synthetic=True,
            model=f"models/{row.id}",
            epsilon=float(row.card.get("epsilon", 0.0)),
            delta=float(row.card.get("delta", 0.0)),
            privacy_unit=str(row.card.get("privacy_unit", "record")),
        )
        for i, s in enumerate(samples):
            if not context.is_active():
                return
            self.runtime.metrics.synthetic_records.inc()
            yield generation_pb2.SyntheticRecord(
                text=s.text, label=s.label or "", provenance=provenance, index=i
            )
