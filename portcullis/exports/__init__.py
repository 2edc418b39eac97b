"""Audit exports: the audit trail's rows, sent to storage and answered with a share link."""
