"""SFTP accounts as other domains see them: how many a tenant has (billing counts them)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select

from portcullis.sftp.models import SftpAccount

__all__ = ["accounts_per_tenant"]


def accounts_per_tenant() -> Select[uuid.UUID, int]:
    """``(tenant_id, accounts)`` for every tenant with an account that exists in SFTPGo
    (active, or not yet deleted), as a select another domain may insert from in one
    statement."""
    return (select(SftpAccount.tenant_id, func.count().label("accounts"))
            .where(SftpAccount.status.in_(("active", "deleting")))
            .group_by(SftpAccount.tenant_id))
