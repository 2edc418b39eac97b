"""/api/v1/billing/profile, /usage, /invoices (a tenant's admins and managers) and the
operator's billing runs, payments and voids. Each view parses, calls one service function
and renders."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import pycountry
from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from pydantic import EmailStr, Field, StrictInt, field_validator

from app.api.registry import OPERATOR, SESSION_ONLY, operation
from app.auth.guards import current_caller
from app.pagination import PageQuery
from app.problems import Problem
from app.validation import Printable, RequestModel, ResponseModel, parse_body, parse_query
from portcullis.billing import service as billing
from portcullis.billing.service import InvoiceView, Period, TaxIdType
from portcullis.callers import Role

bp = Blueprint("billing", __name__, url_prefix="/api/v1")
ADMIN = (Role.admin,)
READERS = (Role.admin, Role.manager)

Text = Annotated[str, Field(min_length=1, max_length=200)]
Optional = Annotated[str, Field(max_length=200)]


class Address(RequestModel):
    line1: Text
    line2: Optional = ""
    city: Text
    state: Annotated[str, Field(max_length=100)] = ""
    postal_code: Annotated[str, Field(max_length=20)] = ""
    country: Annotated[str, Field(min_length=2, max_length=2, description=(
        "ISO 3166-1 alpha-2, for example BR"))]

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not value.isascii() or pycountry.countries.get(alpha_2=value.upper()) is None:
            raise ValueError("country must be an ISO 3166-1 alpha-2 code")
        return value.upper()


class ProfileIn(RequestModel):
    legal_name: Text
    email: EmailStr
    tax_id_type: TaxIdType
    tax_id: Annotated[str, Field(max_length=32, description=(
        "CPF or CNPJ (numeric or alphanumeric), with or without punctuation; answered "
        "compact (digits, letters upper case). Empty when tax_id_type is none. A wrong "
        "check digit is 400 invalid_tax_id."))] | None = None
    address: Address


class AddressOut(ResponseModel):
    line1: str
    line2: str
    city: str
    state: str
    postal_code: str
    country: str


class ProfileOut(ResponseModel):
    legal_name: str
    email: str
    tax_id_type: TaxIdType
    tax_id: str | None
    address: AddressOut


def _profile(profile: billing.Profile) -> ResponseReturnValue:
    return jsonify(ProfileOut.model_validate(profile).model_dump(mode="json"))


@bp.get("/billing/profile")
@operation(summary="The tenant's billing profile", tag="billing", auth=SESSION_ONLY,
           roles=ADMIN, response=ProfileOut, errors=(404,))
def get_profile() -> ResponseReturnValue:
    return _profile(billing.get_profile(current_caller()))


@bp.put("/billing/profile")
@operation(summary="Set the tenant's billing profile (CPF/CNPJ check digits verified)",
           tag="billing", auth=SESSION_ONLY, roles=ADMIN, writes=True, request=ProfileIn,
           response=ProfileOut)
def put_profile() -> ResponseReturnValue:
    body = parse_body(ProfileIn)
    return _profile(billing.put_profile(current_caller(), body.legal_name, str(body.email),
                                        body.tax_id_type, body.tax_id,
                                        body.address.model_dump()))


class UsageQuery(PageQuery):
    since: date | None = Field(default=None, alias="from", description=(
        "First day (YYYY-MM-DD, included); default 29 days before `to`."))
    until: date | None = Field(default=None, alias="to", description=(
        "Last day (YYYY-MM-DD, included); default today (UTC). At most 366 days."))


class UsageOut(ResponseModel):
    date: date
    bucket_id: uuid.UUID
    bytes: int
    objects: int
    egress_bytes: int


class UsagePage(ResponseModel):
    items: list[UsageOut]
    next_cursor: str | None


@bp.get("/usage")
@operation(summary="Daily usage per bucket: stored bytes and objects, egress", tag="billing",
           roles=READERS, scope="billing:read", query=UsageQuery, response=UsagePage)
def list_usage() -> ResponseReturnValue:
    params = parse_query(UsageQuery)
    until = params.until or billing.usage_window()[1]
    since = params.since or billing.usage_window(until)[0]
    page = billing.list_usage(current_caller(), since, until, params)
    return jsonify({"items": [UsageOut.model_validate(i).model_dump(mode="json")
                              for i in page.items], "next_cursor": page.next_cursor})


class LineOut(ResponseModel):
    description: str
    quantity: float = Field(description=(
        "Exact to 9 decimal places (rounded half up), for quantities below 10^6."))
    unit_cents: int
    amount_cents: int


class InvoiceOut(ResponseModel):
    id: uuid.UUID
    number: str = Field(description="INV-YYYY-NNNNNN, gapless within the year of issue")
    period: str
    status: Literal["open", "paid", "overdue", "void"]
    currency: str
    lines: list[LineOut]
    total_cents: int
    paid_cents: int = Field(description="What payments add up to so far")
    issued_at: datetime
    due_at: datetime
    paid_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None


class InvoicePage(ResponseModel):
    items: list[InvoiceOut]
    next_cursor: str | None


def _invoice(invoice: InvoiceView) -> dict[str, Any]:
    return InvoiceOut.model_validate(invoice).model_dump(mode="json")


@bp.get("/invoices")
@operation(summary="The tenant's invoices, newest first", tag="billing", roles=READERS,
           scope="billing:read", query=PageQuery, response=InvoicePage)
def list_invoices() -> ResponseReturnValue:
    page = billing.list_invoices(current_caller(), parse_query(PageQuery))
    return jsonify({"items": [_invoice(i) for i in page.items],
                    "next_cursor": page.next_cursor})


@bp.get("/invoices/<uuid:invoice_id>")
@operation(summary="One invoice", tag="billing", roles=READERS, scope="billing:read",
           response=InvoiceOut, errors=(404,))
def get_invoice(invoice_id: uuid.UUID) -> ResponseReturnValue:
    return jsonify(_invoice(billing.get_invoice(current_caller(), invoice_id)))


@bp.get("/invoices/<uuid:invoice_id>/pdf")
@operation(summary="The invoice as a PDF document (the billing profile as issued)",
           tag="billing", roles=READERS, scope="billing:read", errors=(404,),
           extra={"responses": {"200": {"description": "The invoice",
                                        "content": {"application/pdf": {}}}}})
def invoice_pdf(invoice_id: uuid.UUID) -> ResponseReturnValue:
    number, document = billing.render_pdf(current_caller(), invoice_id)
    response = Response(document, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{number}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- operators ---------------------------------------------------------------------------------


class RunIn(RequestModel):
    period: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                 description="YYYY-MM, a month that is over")]


class JobAccepted(ResponseModel):
    job_id: uuid.UUID


class PaymentIn(RequestModel):
    amount_cents: StrictInt = Field(description="Positive (else 400 invalid_amount)")
    reference: Annotated[str, Field(min_length=1, max_length=100, description=(
        "The payment's own reference: the same one again records nothing more")), Printable]


class VoidIn(RequestModel):
    reason: Annotated[str, Field(min_length=1, max_length=500), Printable]


@bp.post("/operator/billing-runs")
@operation(summary="Bill a past month: a job with progress", tag="operator", auth=OPERATOR,
           request=RunIn, response=JobAccepted, status=202, errors=(409,))
def create_run() -> ResponseReturnValue:
    body = parse_body(RunIn)
    try:
        period = Period.parse(body.period)
    except ValueError:
        raise Problem(400, "validation_error", "period must be YYYY-MM.") from None
    return jsonify({"job_id": str(billing.request_run(current_caller(), period))}), 202


@bp.post("/operator/invoices/<uuid:invoice_id>/payments")
@operation(summary="Record a payment (idempotent per reference)", tag="operator",
           auth=OPERATOR, request=PaymentIn, response=InvoiceOut, errors=(404, 409))
def record_payment(invoice_id: uuid.UUID) -> ResponseReturnValue:
    body = parse_body(PaymentIn)
    return jsonify(_invoice(billing.record_payment(current_caller(), invoice_id,
                                                   body.amount_cents, body.reference)))


@bp.post("/operator/invoices/<uuid:invoice_id>/void")
@operation(summary="Void an open or overdue invoice", tag="operator", auth=OPERATOR,
           request=VoidIn, response=InvoiceOut, errors=(404, 409))
def void_invoice(invoice_id: uuid.UUID) -> ResponseReturnValue:
    body = parse_body(VoidIn)
    return jsonify(_invoice(billing.void(current_caller(), invoice_id, body.reason)))
