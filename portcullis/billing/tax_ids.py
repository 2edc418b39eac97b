"""Brazilian tax ids, checked by python-stdnum: CPF (people) and CNPJ (companies, numeric or
the alphanumeric form in use since July 2026). Stored and answered compact; anything that
leaves the process (an audit row, a log, an error) sees the masked form only."""

from __future__ import annotations

from enum import StrEnum

from stdnum.br import cnpj, cpf
from stdnum.exceptions import ValidationError

from portcullis.errors import Invalid


class TaxIdType(StrEnum):
    cpf = "cpf"
    cnpj = "cnpj"
    none = "none"


_MODULES = {TaxIdType.cpf: cpf, TaxIdType.cnpj: cnpj}


def normalise(kind: TaxIdType, value: str | None) -> str | None:
    """The compact form (digits, letters upper case) of a valid id; ``none`` takes no id.

    The error never repeats the value: it is a tax id even when it is a wrong one."""
    if kind is TaxIdType.none:
        if value:
            raise Invalid("invalid_tax_id", "tax_id must be empty when tax_id_type is none.")
        return None
    if not value:
        raise Invalid("invalid_tax_id", f"A {kind.value.upper()} is required.")
    module = _MODULES[kind]
    try:
        compact = str(module.validate(value)).upper()
    except ValidationError:
        compact = ""
    # stdnum's CNPJ pattern is ``[\dA-Z]``, and ``\d`` matches any script's digits (Arabic-Indic
    # ones even give the same check digits): only ASCII digits and letters are a tax id.
    if not (compact.isascii() and compact.isalnum()):
        raise Invalid("invalid_tax_id",
                      f"The {kind.value.upper()} is not valid (check digits or format).")
    return compact


def masked(value: str | None) -> str | None:
    """What audit details keep of a tax id: its last 4 characters."""
    if not value:
        return None
    return "*" * max(len(value) - 4, 0) + value[-4:]
