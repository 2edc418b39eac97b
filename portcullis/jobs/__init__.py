"""Jobs: the database record of every piece of background work (the truth Celery carries)."""
