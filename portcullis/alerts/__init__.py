"""Unusual-activity detection and the outbox of signed SIEM webhooks."""
