"""The names of the credentials a browser carries: the session cookie and the CSRF pair."""

SESSION_COOKIE = "portcullis_session"
CSRF_COOKIE = "portcullis_csrf"
CSRF_HEADER = "X-CSRF-Token"
