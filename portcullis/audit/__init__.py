"""The append-only, per-tenant hash-chained audit trail."""
