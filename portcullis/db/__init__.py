"""Persistence plumbing shared by every domain: declarative base, engine, scoped sessions."""

from portcullis.db.base import Base
from portcullis.db.session import system_session, tenant_session

__all__ = ["Base", "system_session", "tenant_session"]
