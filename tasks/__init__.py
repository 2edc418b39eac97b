"""Celery tasks: thin wrappers that take ids and call a domain service. Module = queue."""
