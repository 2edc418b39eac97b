"""An invoice as a PDF document, rendered on request by fpdf2 from what the invoice stores
(the billing profile as it stood at issue, the lines, the status): the same invoice always
renders the same figures, and the same bytes while its status is unchanged.

fpdf2 is pure Python (no system libraries, unlike WeasyPrint's Pango) and small (unlike
ReportLab), and its core fonts need no font file: text outside Latin-1 is transliterated
where it can be and shown as "?" where it cannot.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from fpdf import FPDF

from portcullis.billing.mail import money

_STATUS = {"open": "Open", "paid": "Paid", "overdue": "Overdue", "void": "Void"}


def _text(value: object) -> str:
    """Latin-1 for the core fonts: accents kept, other letters decomposed, the rest "?"."""
    out = []
    for char in str(value):
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode()
            out.append(plain or "?")
    return "".join(out)


def render(invoice: dict[str, Any]) -> bytes:
    """``invoice``: the view the API answers plus ``billed_to`` (the profile at issue)."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(invoice["issued_at"])
    pdf.set_title(_text(f"Invoice {invoice['number']}"))
    pdf.set_author("Portcullis")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    currency = invoice["currency"]

    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, _text(f"Invoice {invoice['number']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    status = _STATUS.get(invoice["status"], invoice["status"])
    for label, value in (("Period", invoice["period"]), ("Status", status),
                         ("Issued", _date(invoice["issued_at"])),
                         ("Due", _date(invoice["due_at"])),
                         ("Paid", _date(invoice["paid_at"]) if invoice["paid_at"] else "-")):
        pdf.cell(30, 6, _text(label))
        pdf.cell(0, 6, _text(value), new_x="LMARGIN", new_y="NEXT")

    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Billed to", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in _billed_to(invoice["billed_to"]):
        pdf.multi_cell(0, 6, _text(line), new_x="LMARGIN", new_y="NEXT")

    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    widths = (85, 35, 30, 40)
    for width, title, align in zip(widths, ("Description", "Quantity", "Unit", "Amount"),
                                   "LRRR", strict=True):
        pdf.cell(width, 7, title, border="B", align=align)
    pdf.ln()
    pdf.set_font("Helvetica", size=10)
    for item in invoice["lines"]:
        cells = (item["description"], f"{item['quantity']}",
                 money(item["unit_cents"], currency), money(item["amount_cents"], currency))
        for width, value, align in zip(widths, cells, "LRRR", strict=True):
            pdf.cell(width, 7, _text(value), align=align)
        pdf.ln()
    if not invoice["lines"]:
        pdf.cell(sum(widths), 7, "No usage in this period.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(sum(widths[:3]), 9, "Total", border="T")
    pdf.cell(widths[3], 9, _text(money(invoice["total_cents"], currency)), border="T",
             align="R", new_x="LMARGIN", new_y="NEXT")
    if invoice["status"] == "void":
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 10, "VOID: this invoice is cancelled and not payable.",
                 new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _date(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def _billed_to(billed: dict[str, Any]) -> list[str]:
    lines = [billed.get("legal_name") or billed.get("tenant_name") or ""]
    if billed.get("tax_id"):
        lines.append(f"{str(billed['tax_id_type']).upper()} {billed['tax_id']}")
    address = billed.get("address") or {}
    lines += [address.get(k) for k in ("line1", "line2") if address.get(k)]
    city = ", ".join(v for v in (address.get("city"), address.get("state"),
                                 address.get("postal_code")) if v)
    if city:
        lines.append(city)
    if address.get("country"):
        lines.append(address["country"])
    if billed.get("email"):
        lines.append(billed["email"])
    return lines
