"""Access keys (a tenant's programmatic credentials) and operator keys (no tenant at all)."""
