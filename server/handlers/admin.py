"""AdminService: lifecycle status, and pin / unpin / rollback for operators."""

from __future__ import annotations

import hmac
import os
from typing import Any

import grpc

from bookrec.v1 import admin_pb2 as pb
from bookrec.v1 import admin_pb2_grpc as pb_grpc
from server.engine.manager import ModelManager, State
from server.handlers.common import check_id, offload, rpc

_STATE = {
    State.LOADING: pb.MODEL_STATE_LOADING,
    State.AVAILABLE: pb.MODEL_STATE_AVAILABLE,
    State.UNLOADING: pb.MODEL_STATE_UNLOADING,
    State.FAILED: pb.MODEL_STATE_FAILED,
}


class Admin(pb_grpc.AdminServiceServicer):
    def __init__(self, models: ModelManager, token: str) -> None:
        self.models = models
        self.token = token

    async def _authorise(self, context: Any) -> str:
        """The caller's peer address, once its bearer token checks out."""
        metadata = dict(context.invocation_metadata() or ())
        given = str(metadata.get("authorization", ""))
        if not given.startswith("Bearer "):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "admin calls need metadata 'authorization: Bearer <BOOKREC_ADMIN_TOKEN>'",
            )
        if not self.token:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "admin commands are off: start the server with BOOKREC_ADMIN_TOKEN set",
            )
        if not hmac.compare_digest(given.removeprefix("Bearer ").encode(), self.token.encode()):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "wrong admin token")
        return str(context.peer())

    async def _status_after_change(self) -> None:
        # This worker acts at once; the others see the control file change.
        await offload(self.models.poll)

    @rpc
    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(
            serving_version=self.models.serving_version or "",
            pinned_version=self.models.pinned or "",
            versions=[
                pb.ModelVersionStatus(version=s.version, state=_STATE[s.state], error=s.error)
                for s in self.models.status()
            ],
            worker_pid=os.getpid(),
            decision=self.models.last_decision,
        )

    @rpc
    async def PinVersion(
        self, request: pb.PinVersionRequest, context: Any
    ) -> pb.PinVersionResponse:
        by = await self._authorise(context)
        version = check_id("version", request.version)
        await offload(self.models.pin, version, by)
        await self._status_after_change()
        return pb.PinVersionResponse(pinned_version=version)

    @rpc
    async def Unpin(self, request: pb.UnpinRequest, context: Any) -> pb.UnpinResponse:
        by = await self._authorise(context)
        await offload(self.models.pin, None, by)
        await self._status_after_change()
        return pb.UnpinResponse()

    @rpc
    async def Rollback(self, request: pb.RollbackRequest, context: Any) -> pb.RollbackResponse:
        by = await self._authorise(context)
        target = await offload(self.models.rollback, by)
        await self._status_after_change()
        return pb.RollbackResponse(pinned_version=target)
