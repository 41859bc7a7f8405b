"""Models servicer: model resources and their cards."""

from __future__ import annotations

import grpc
from privsynth.client.pb import models_pb2, models_pb2_grpc
from privsynth.server.api.auth import identity_of
from privsynth.server.api.names import parse_name
from privsynth.server.api.services.convert import model_pb
from privsynth.server.api.services.paging import paginate
from privsynth.server.db import ModelRow
from privsynth.server.errors import FailedPrecondition, NotFound, Reason
from privsynth.server.privacy import audit
from privsynth.server.runtime import Runtime
from sqlalchemy import select

__all__ = ["ModelsServicer"]


class ModelsServicer(models_pb2_grpc.ModelsServicer):
    """privsynth.v1.Models."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def GetModel(  # noqa: N802
        self, request: models_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> models_pb2.Model:
        """One model with its card."""
        model_id = parse_name("models", request.name, field="name")
        with self.runtime.db.session() as s:
            row = s.get(ModelRow, model_id)
        if row is None or not identity_of(context).sees(row.tenant):
            raise NotFound(f"model '{request.name}' not found", reason=Reason.MODEL_NOT_FOUND)
        return model_pb(row, with_curve=True)

    def DeleteModel(  # noqa: N802
        self, request: models_pb2.DeleteModelRequest, context: grpc.ServicerContext
    ) -> models_pb2.DeleteModelResponse:
        """Remove the weights; keep the card, the ledger and an audit entry."""
        identity = identity_of(context)
        model_id = parse_name("models", request.name, field="name")
        with self.runtime.db.session() as s:
            row = s.get(ModelRow, model_id, with_for_update=True)
            if row is None or row.state == "DELETED" or not identity.sees(row.tenant):
                raise NotFound(f"model '{request.name}' not found", reason=Reason.MODEL_NOT_FOUND)
            if row.state == "TRAINING":
                raise FailedPrecondition(
                    "model is still training; cancel its job first", reason=Reason.MODEL_TRAINING
                )
            weights = row.weights_path
            row.state = "DELETED"
            row.weights_path = ""
            audit.append(
                s,
                action="model.deleted",
                actor=identity.name,
                dataset_id=row.dataset_id,
                details={"model": f"models/{row.id}", "weights_sha256": row.weights_sha256},
            )
            # Weights are content-addressed: keep a file another model's row still names.
            shared = weights and s.scalar(
                select(ModelRow.id).where(ModelRow.weights_path == weights, ModelRow.id != row.id)
            )
        if weights and shared is None:
            self.runtime.store.delete(weights)
        return models_pb2.DeleteModelResponse()

    def ListModels(  # noqa: N802
        self, request: models_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> models_pb2.ListModelsResponse:
        """Models, newest first, optionally of one dataset."""
        query = select(ModelRow)
        scope = identity_of(context).tenant_scope
        if scope is not None:
            query = query.where(ModelRow.tenant == scope)
        if request.dataset:
            query = query.where(
                ModelRow.dataset_id == parse_name("datasets", request.dataset, field="dataset")
            )
        with self.runtime.db.session() as s:
            rows, token = paginate(
                s,
                query,
                order=[(ModelRow.created_at, True), (ModelRow.id, False)],
                page_size=request.page_size,
                page_token=request.page_token,
                scope=f"ListModels|{scope}|{request.dataset}",
            )
        return models_pb2.ListModelsResponse(
            models=[model_pb(r) for r in rows], next_page_token=token
        )
