"""Buckets, permissions, lifecycle, uploads, files and file links (API.md's table)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import AfterValidator, Field, StringConstraints

from app.api.registry import operation
from app.auth.guards import current_caller
from app.pagination import PageQuery
from app.problems import Problem
from app.storage.multipart import FilePart, boundary_of
from app.validation import RequestModel, ResponseModel, parse_body, parse_query
from portcullis.callers import Role
from portcullis.links import addresses
from portcullis.links import service as links
from portcullis.storage import service as storage

bp = Blueprint("storage", __name__, url_prefix="/api/v1")

ADMIN_MANAGER = (Role.admin, Role.manager)


class BucketIn(RequestModel):
    name: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9-]+$")


class BucketOut(ResponseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    bytes: int
    objects: int


class BucketsOut(ResponseModel):
    items: list[BucketOut]
    next_cursor: str | None


class PermissionIn(RequestModel):
    read: bool
    write: bool
    delete: bool


class PermissionOut(ResponseModel):
    bucket_id: uuid.UUID
    member_id: uuid.UUID
    read: bool
    write: bool
    delete: bool


class LifecycleIn(RequestModel):
    expire_after_days: int | None = Field(ge=1, le=3650)


class LifecycleOut(ResponseModel):
    bucket_id: uuid.UUID
    expire_after_days: int | None


class UploadAccepted(ResponseModel):
    id: uuid.UUID
    status: Literal["pending"]
    job_id: uuid.UUID


class UploadOut(ResponseModel):
    id: uuid.UUID
    status: Literal["pending", "scanning", "clean", "rejected", "infected"]
    # Drop-box uploads (SFTP) add too_large, unsupported_type (refused at intake: there is
    # no client to answer 413/415) and superseded (the object was replaced or removed
    # before its scan).
    reason: Literal["malware", "type_mismatch", "corrupt", "empty", "scan_failed",
                    "too_large", "unsupported_type", "superseded"] | None
    file_id: uuid.UUID | None


class FileOut(ResponseModel):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


class FilesOut(ResponseModel):
    items: list[FileOut]
    next_cursor: str | None


# Normalised as stored; anything else is a 400 naming the entry.
IpOrCidr = Annotated[str, Field(min_length=1, max_length=49, description=(
    "An IPv4 or IPv6 address, or a CIDR (host bits are dropped)")),
    AfterValidator(addresses.normalise)]


# Kept exactly as sent (not stripped like other strings): HTTP Basic sends it verbatim.
LinkPassword = Annotated[str, StringConstraints(strip_whitespace=False, min_length=12,
                                                max_length=128)]


class LinkIn(RequestModel):
    expires_in: int = Field(default=3600, ge=60, le=604800)
    max_downloads: int | None = Field(default=None, ge=1, le=10000, description=(
        "Answer 410 once this many downloads have started"))
    password: LinkPassword | None = Field(default=None, description=(
        "Required as the password of HTTP Basic credentials on `GET /s/{token}`; stored "
        "only as a slow hash"))
    allowed_ips: list[IpOrCidr] | None = Field(
        default=None, min_length=1, max_length=addresses.MAX_ENTRIES,
        description="Only these client addresses may download; any other gets 404")


class LinkOut(ResponseModel):
    id: uuid.UUID
    url: str
    token: str = Field(description="The token at the end of `url` (shown once, like it), so "
                                   "a client or a stateful test can call `GET /s/{token}`.")
    expires_at: datetime
    max_downloads: int | None
    downloads: int
    password_protected: bool
    allowed_ips: list[str] | None


class LinkItem(ResponseModel):
    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    max_downloads: int | None
    downloads: int
    password_protected: bool
    allowed_ips: list[str] | None
    created_by: uuid.UUID | None


class LinksOut(ResponseModel):
    items: list[LinkItem]
    next_cursor: str | None


def _json(model: type[ResponseModel], value: object) -> dict[str, object]:
    return model.model_validate(value).model_dump(mode="json")


@bp.get("/buckets")
@operation(summary="Buckets the caller may read", tag="buckets", scope="buckets:read",
           query=PageQuery, response=BucketsOut)
def list_buckets() -> ResponseReturnValue:
    page = storage.list_buckets(current_caller(), parse_query(PageQuery))
    return jsonify(_json(BucketsOut, page))


@bp.post("/buckets")
@operation(summary="Create a bucket", tag="buckets", scope="buckets:write",
           roles=ADMIN_MANAGER, writes=True, request=BucketIn, response=BucketOut, status=201,
           errors=(409,))
def create_bucket() -> ResponseReturnValue:
    body = parse_body(BucketIn)
    return jsonify(_json(BucketOut, storage.create_bucket(current_caller(), body.name))), 201


# Object routes leave the role to the service, after visibility: a caller who may not read
# the bucket gets 404 whatever their role; only a reader learns 403.

@bp.delete("/buckets/<uuid:bucket_id>")
@operation(summary="Delete an empty bucket: admins", tag="buckets", scope="buckets:write",
           writes=True, status=204, errors=(404, 409))
def delete_bucket(bucket_id: uuid.UUID) -> ResponseReturnValue:
    storage.delete_bucket(current_caller(), bucket_id)
    return Response(status=204)


@bp.put("/buckets/<uuid:bucket_id>/permissions/<uuid:member_id>")
@operation(summary="Grant a member rights on a bucket (view-only: read only): admins, "
           "managers", tag="buckets", scope="buckets:write", writes=True,
           request=PermissionIn, response=PermissionOut, errors=(404,))
def put_permission(bucket_id: uuid.UUID, member_id: uuid.UUID) -> ResponseReturnValue:
    body = parse_body(PermissionIn)
    granted = storage.set_permissions(current_caller(), bucket_id, member_id, read=body.read,
                                      write=body.write, delete=body.delete)
    return jsonify(_json(PermissionOut, granted))


@bp.put("/buckets/<uuid:bucket_id>/lifecycle")
@operation(summary="Expire files older than N days (null: keep): admins, managers",
           tag="buckets", scope="buckets:write", writes=True, request=LifecycleIn,
           response=LifecycleOut, errors=(404,))
def put_lifecycle(bucket_id: uuid.UUID) -> ResponseReturnValue:
    body = parse_body(LifecycleIn)
    rule = storage.set_lifecycle(current_caller(), bucket_id, body.expire_after_days)
    return jsonify(_json(LifecycleOut, rule))


@bp.post("/buckets/<uuid:bucket_id>/uploads")
@operation(summary="Upload a file (multipart field `file`); it is scanned before it exists",
           tag="files", scope="files:write", writes=True, response=UploadAccepted,
           status=202, errors=(404, 413, 415),
           extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
               "schema": {"type": "object", "required": ["file"], "properties": {
                   "file": {"type": "string", "format": "binary"}}}}}}})
def upload(bucket_id: uuid.UUID) -> ResponseReturnValue:
    def receive() -> storage.Incoming:  # called once the caller may write the bucket
        if request.mimetype != "multipart/form-data":
            raise Problem(415, "unsupported_media_type", "Send multipart/form-data.")
        part = FilePart(request.stream, boundary_of(request.mimetype_params)).open()
        return storage.Incoming(part.filename, part.content_type, part.chunks())

    accepted = storage.upload(current_caller(), bucket_id, receive)
    return jsonify({"id": str(accepted.id), "status": "pending",
                    "job_id": str(accepted.job_id)}), 202


@bp.get("/uploads/<uuid:upload_id>")
@operation(summary="An upload's verdict: the uploader or an admin", tag="files",
           scope="files:read", response=UploadOut, errors=(404,))
def get_upload(upload_id: uuid.UUID) -> ResponseReturnValue:
    return jsonify(_json(UploadOut, storage.get_upload(current_caller(), upload_id)))


@bp.get("/buckets/<uuid:bucket_id>/files")
@operation(summary="Files of a bucket", tag="files", scope="files:read", query=PageQuery,
           response=FilesOut, errors=(404,))
def list_files(bucket_id: uuid.UUID) -> ResponseReturnValue:
    page = storage.list_files(current_caller(), bucket_id, parse_query(PageQuery))
    return jsonify(_json(FilesOut, page))


@bp.delete("/files/<uuid:file_id>")
@operation(summary="Delete a file (storage object and record)", tag="files",
           scope="files:delete", writes=True, status=204, errors=(404,))
def delete_file(file_id: uuid.UUID) -> ResponseReturnValue:
    storage.delete_file(current_caller(), file_id)
    return Response(status=204)


@bp.post("/files/<uuid:file_id>/links")
@operation(summary="Create an expiring share link, optionally hardened", tag="links",
           scope="files:read", writes=True, request=LinkIn, response=LinkOut, status=201,
           errors=(404,))
def create_link(file_id: uuid.UUID) -> ResponseReturnValue:
    body = parse_body(LinkIn) if request.get_data(cache=True) else LinkIn()  # chunked too
    created = links.create_for_file(current_caller(), file_id, body.expires_in,
                                    max_downloads=body.max_downloads, password=body.password,
                                    allowed_ips=body.allowed_ips)
    return jsonify(_json(LinkOut, created)), 201


@bp.get("/files/<uuid:file_id>/links")
@operation(summary="A file's share links (never their tokens or URLs)", tag="links",
           scope="files:read", query=PageQuery, response=LinksOut, errors=(404,))
def list_links(file_id: uuid.UUID) -> ResponseReturnValue:
    page = links.list_for_file(current_caller(), file_id, parse_query(PageQuery))
    return jsonify(_json(LinksOut, page))


@bp.delete("/links/<uuid:link_id>")
@operation(summary="Revoke a share link: its creator or an admin", tag="links",
           scope="files:read", writes=True, status=204, errors=(404,))
def revoke_link(link_id: uuid.UUID) -> ResponseReturnValue:
    links.revoke(current_caller(), link_id)
    return Response(status=204)
