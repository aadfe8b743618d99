"""Staff accounts, managed by group admins: create, list, read, change, reset a password, unlock,
end sessions. Every change is in the security log."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import query_args, route
from gateway.schemas import (
    PasswordResetSchema,
    SessionsEndedSchema,
    StaffChangesSchema,
    StaffCreateSchema,
    StaffPageSchema,
    StaffQuerySchema,
    StaffSchema,
)
from services.kit.schemas import load

TAGS = ("staff",)
PERMISSION = "staff:manage"


def _actor(request: Request) -> str:
    return request.principal.credential


class StaffRoutes:
    @route("POST", "/v1/staff", PERMISSION, summary="Create a staff account", tags=TAGS, body=StaffCreateSchema,
           responses={201: StaffSchema, 409: None, 422: None})
    def create_staff(self, request: Request) -> tuple[int, Any]:
        data = load(StaffCreateSchema(), request.json_body)
        return 201, StaffSchema().dump(self.auth.accounts.create(data, _actor(request)))

    @route("GET", "/v1/staff", PERMISSION, summary="List staff accounts (by role, status, branch or name)",
           tags=TAGS, query=StaffQuerySchema, responses={200: StaffPageSchema}, branch_params=())
    def list_staff(self, request: Request) -> Any:
        return StaffPageSchema().dump(self.auth.accounts.find(load(StaffQuerySchema(), query_args(request))))

    @route("GET", "/v1/staff/<user_id>", PERMISSION, summary="Read a staff account", tags=TAGS,
           responses={200: StaffSchema, 404: None})
    def get_staff(self, request: Request, user_id: str) -> Any:
        return StaffSchema().dump(self.auth.accounts.get(user_id))

    @route("PATCH", "/v1/staff/<user_id>", PERMISSION,
           summary="Change a staff account's name, role, branches or status",
           description="A change of role, branches or status ends the person's sessions.", tags=TAGS,
           body=StaffChangesSchema, responses={200: StaffSchema, 404: None, 409: None})
    def update_staff(self, request: Request, user_id: str) -> Any:
        changes = load(StaffChangesSchema(), request.json_body)
        return StaffSchema().dump(self.auth.accounts.change(user_id, changes, _actor(request)))

    @route("POST", "/v1/staff/<user_id>/password", PERMISSION,
           summary="Set a temporary password (the person chooses a new one at next sign-in)", tags=TAGS,
           body=PasswordResetSchema, responses={200: StaffSchema, 404: None})
    def reset_staff_password(self, request: Request, user_id: str) -> Any:
        data = load(PasswordResetSchema(), request.json_body)
        return StaffSchema().dump(self.auth.accounts.reset_password(user_id, data["password"], _actor(request)))

    @route("POST", "/v1/staff/<user_id>/unlock", PERMISSION, summary="Lift a sign-in lockout", tags=TAGS,
           responses={200: StaffSchema, 404: None})
    def unlock_staff(self, request: Request, user_id: str) -> Any:
        return StaffSchema().dump(self.auth.accounts.unlock(user_id, _actor(request)))

    @route("POST", "/v1/staff/<user_id>/sessions/revoke", PERMISSION,
           summary="Sign a person out everywhere (end all their sessions)", tags=TAGS,
           responses={200: SessionsEndedSchema, 404: None})
    def revoke_staff_sessions(self, request: Request, user_id: str) -> Any:
        return SessionsEndedSchema().dump(self.auth.accounts.end_sessions(user_id, _actor(request)))
