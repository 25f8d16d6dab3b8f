"""AdminService: lifecycle status, and pin / unpin / rollback for operators.

A pin or rollback to a version that cannot serve is refused before any worker
follows it: FAILED_PRECONDITION with the load error (the manager loads the
version first), NOT_FOUND for a version that is not in the artifact root; a
rollback with no older loadable version is FAILED_PRECONDITION too. With a fleet's shared
control store (docs/fleet.md) the decision reaches every replica; UNAVAILABLE when
that store cannot take it (nothing changed). GetStatus lists the fleet: every
worker of every replica sharing the control store (one server's workers share
the artifact root's, server/engine/control.py).
"""

from __future__ import annotations

import os
from typing import Any

import grpc

from bookrec.v1 import admin_pb2 as pb
from bookrec.v1 import admin_pb2_grpc as pb_grpc
from server.auth import current_caller
from server.engine.control import ControlUnavailable
from server.engine.manager import ModelManager, NoOlderVersion, State, VersionFailed
from server.handlers.common import check_id, offload, rpc

_STATE = {
    State.LOADING: pb.MODEL_STATE_LOADING,
    State.AVAILABLE: pb.MODEL_STATE_AVAILABLE,
    State.UNLOADING: pb.MODEL_STATE_UNLOADING,
    State.FAILED: pb.MODEL_STATE_FAILED,
}


class Admin(pb_grpc.AdminServiceServicer):
    def __init__(self, models: ModelManager) -> None:
        self.models = models

    async def _authorise(self, context: Any) -> str:
        """Who asked, for the control file's audit field. The auth interceptor
        (server/auth.py) has already checked the admin scope."""
        caller = current_caller()
        return f"{caller.label if caller else 'anonymous'} from {context.peer()}"

    async def _status_after_change(self) -> None:
        # This worker acts at once; the others see the control file change.
        await offload(self.models.poll)

    @rpc
    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        fleet = await offload(self.models.control.fleet)  # the file store reads files
        return pb.GetStatusResponse(
            serving_version=self.models.serving_version or "",
            pinned_version=self.models.pinned or "",
            versions=[
                pb.ModelVersionStatus(version=s.version, state=_STATE[s.state], error=s.error)
                for s in self.models.status()
            ],
            worker_pid=os.getpid(),
            decision=self.models.last_decision,
            fleet=[
                pb.ReplicaStatus(
                    replica_id=r.replica_id,
                    serving_version=r.serving_version,
                    state=r.state,
                    ready=r.ready,
                    pinned_version=r.pinned_version,
                    heartbeat_unix=r.at,
                    worker_pid=r.worker_pid,
                )
                for r in fleet
            ],
        )

    @rpc
    async def PinVersion(
        self, request: pb.PinVersionRequest, context: Any
    ) -> pb.PinVersionResponse:
        by = await self._authorise(context)
        version = check_id("version", request.version)
        try:
            await offload(self.models.pin, version, by)
        except VersionFailed as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except ControlUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        await self._status_after_change()
        return pb.PinVersionResponse(pinned_version=version)

    @rpc
    async def Unpin(self, request: pb.UnpinRequest, context: Any) -> pb.UnpinResponse:
        by = await self._authorise(context)
        try:
            await offload(self.models.pin, None, by)
        except ControlUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        await self._status_after_change()
        return pb.UnpinResponse()

    @rpc
    async def Rollback(self, request: pb.RollbackRequest, context: Any) -> pb.RollbackResponse:
        by = await self._authorise(context)
        try:
            target = await offload(self.models.rollback, by)
        except (VersionFailed, NoOlderVersion) as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        except ControlUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        await self._status_after_change()
        return pb.RollbackResponse(pinned_version=target)
