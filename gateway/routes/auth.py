"""Signing in and out: staff exchange a password for tokens, refresh them, sign out, change password."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import SELF_PERMISSION, route
from gateway.schemas import (
    LoginSchema,
    MeSchema,
    PasswordChangeSchema,
    RefreshSchema,
    SignedOutSchema,
    StaffSchema,
    TokenGrantSchema,
)
from services.kit.errors import Forbidden
from services.kit.schemas import load

TAGS = ("sign-in",)


def _staff_session(request: Request) -> Any:
    principal = request.principal
    if principal.session_id is None:
        raise Forbidden("This route is for a signed-in person's token; API keys are revoked by a group admin.")
    return principal


class AuthRoutes:
    @route("POST", "/v1/auth/login", public=True, rate_limit="login", summary="Sign in with a user name and password",
           description="Gives a short-lived access token and a refresh token. Five failures for one account (or "
                       "twenty from one address) within 15 minutes lock sign-in for 15 minutes (429).",
           tags=TAGS, body=LoginSchema, responses={200: TokenGrantSchema, 401: None, 403: None, 422: None})
    def login(self, request: Request) -> Any:
        data = load(LoginSchema(), request.json_body)
        return TokenGrantSchema().dump(self.auth.accounts.sign_in(data["username"], data["password"],
                                                                   request.client_address))

    @route("POST", "/v1/auth/refresh", public=True, rate_limit="login",
           summary="A new token pair for a refresh token (each refresh token works once)",
           tags=TAGS, body=RefreshSchema, responses={200: TokenGrantSchema, 401: None, 422: None})
    def refresh(self, request: Request) -> Any:
        data = load(RefreshSchema(), request.json_body)
        return TokenGrantSchema().dump(self.auth.accounts.refresh(data["refresh_token"], request.client_address))

    @route("POST", "/v1/auth/logout", SELF_PERMISSION, summary="Sign out: end this session and its tokens",
           tags=TAGS, responses={200: SignedOutSchema})
    def logout(self, request: Request) -> Any:
        principal = _staff_session(request)
        self.auth.accounts.sign_out(principal.identity.subject, principal.session_id)
        return SignedOutSchema().dump({"signed_out": True})

    @route("GET", "/v1/auth/me", SELF_PERMISSION, summary="Who this token or key is and what it may do", tags=TAGS,
           responses={200: MeSchema})
    def me(self, request: Request) -> Any:
        return MeSchema().dump(request.principal)

    @route("POST", "/v1/auth/password", SELF_PERMISSION, summary="Change your own password",
           description="Ends your other sessions; this one stays signed in.", tags=TAGS,
           body=PasswordChangeSchema, responses={200: StaffSchema, 422: None})
    def change_password(self, request: Request) -> Any:
        principal = _staff_session(request)
        data = load(PasswordChangeSchema(), request.json_body)
        return StaffSchema().dump(self.auth.accounts.change_own_password(
            principal.identity.subject, principal.session_id, data["current_password"], data["new_password"]))
