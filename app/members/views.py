"""/api/v1/members and /api/v1/invitations."""

from __future__ import annotations

import uuid
from datetime import datetime

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from pydantic import EmailStr, Field, model_validator

from app.api.registry import PUBLIC, SESSION_ONLY, operation
from app.auth.guards import current_caller, public_caller
from app.pagination import PageQuery
from app.validation import (
    EmailToken,
    NewPassword,
    RequestModel,
    ResponseModel,
    parse_body,
    parse_query,
)
from portcullis.accounts import members
from portcullis.accounts.models import MemberStatus
from portcullis.callers import Role

bp = Blueprint("members", __name__, url_prefix="/api/v1")

ANY_ROLE = (Role.admin, Role.manager, Role.staff, Role.viewonly)
INVITERS = (Role.admin, Role.manager)
ADMIN = (Role.admin,)


class MemberOut(ResponseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    status: MemberStatus


class MembersOut(ResponseModel):
    items: list[MemberOut]
    next_cursor: str | None = None


class MemberPatch(RequestModel):
    role: Role | None = None
    status: MemberStatus | None = None

    @model_validator(mode="after")
    def _something(self) -> MemberPatch:
        if self.role is None and self.status is None:
            raise ValueError("give a role, a status or both")
        if self.status is MemberStatus.removed:
            raise ValueError("status is active or suspended")
        return self


class InvitationIn(RequestModel):
    email: EmailStr
    role: Role


class InvitationOut(ResponseModel):
    id: uuid.UUID
    expires_at: datetime


class AcceptIn(RequestModel):
    token: EmailToken
    name: str = Field(min_length=1, max_length=200)
    password: NewPassword


class Empty(ResponseModel):
    pass


def _out(view: members.MemberView) -> dict[str, object]:
    return MemberOut.model_validate(view).model_dump(mode="json")


@bp.get("/members")
@operation(summary="The tenant's members", tag="members", auth=SESSION_ONLY, roles=ANY_ROLE,
           query=PageQuery, response=MembersOut)
def list_members() -> ResponseReturnValue:
    page = members.list_members(current_caller(), parse_query(PageQuery))
    return jsonify({"items": [_out(m) for m in page.items], "next_cursor": page.next_cursor})


@bp.patch("/members/<uuid:member_id>")
@operation(summary="Change a member's role or status (suspension revokes access at once)",
           tag="members", auth=SESSION_ONLY, roles=ADMIN, writes=True, request=MemberPatch,
           response=MemberOut, errors=(404, 409))
def patch_member(member_id: uuid.UUID) -> ResponseReturnValue:
    body = parse_body(MemberPatch)
    view = members.change_member(current_caller(), member_id, body.role, body.status)
    return jsonify(_out(view))


@bp.delete("/members/<uuid:member_id>")
@operation(summary="Remove a member; their sessions and keys die at once", tag="members",
           auth=SESSION_ONLY, roles=ADMIN, writes=True, status=204, errors=(404, 409))
def delete_member(member_id: uuid.UUID) -> ResponseReturnValue:
    members.remove_member(current_caller(), member_id)
    return Response(status=204)


@bp.post("/invitations")
@operation(summary="Invite someone by email (managers: staff and view-only only)",
           tag="members", auth=SESSION_ONLY, roles=INVITERS, writes=True,
           request=InvitationIn, response=InvitationOut, status=201, errors=(409,))
def create_invitation() -> ResponseReturnValue:
    body = parse_body(InvitationIn)
    invitation = members.invite(current_caller(), str(body.email), body.role)
    return jsonify({"id": str(invitation.id),
                    "expires_at": invitation.expires_at.isoformat()}), 201


@bp.post("/invitations/accept")
@operation(summary="Accept an invitation: creates the account", tag="members", auth=PUBLIC,
           request=AcceptIn, response=Empty, errors=(409, 410))
def accept_invitation() -> ResponseReturnValue:
    body = parse_body(AcceptIn)
    members.accept_invitation(public_caller(), body.token, body.name, body.password)
    return jsonify({})
