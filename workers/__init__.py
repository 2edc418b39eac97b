"""The Celery app and the small clients tasks use to reach the outside world."""
