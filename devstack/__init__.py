"""Private local services (PostgreSQL, Redis, clamd, S3, mail, SIEM, SFTPGo double).

Started on free ports under a folder of their own by the test fixtures and by
``portcullis-dev``; nothing here is used in production.
"""
