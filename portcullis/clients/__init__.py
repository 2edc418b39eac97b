"""The clients that reach the outside world: S3, clamd, SMTP, the SIEM receiver and SFTPGo.

Each raises ``portcullis.errors.DependencyUnavailable`` when its dependency cannot be reached
in time; the front door answers 503, tasks retry with backoff.
"""
