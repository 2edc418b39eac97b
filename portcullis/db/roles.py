"""The database roles processes run under; the migrations create them.

``portcullis_app`` sees one tenant's rows (row-level security keyed on the transaction's
``app.tenant_id``); ``portcullis_system`` is for the few cross-tenant jobs (sweepers,
billing runs, chain verification) and must be asked for by name. Neither may UPDATE or
DELETE audit events. ``DATABASE_URL`` may name the owner: every connection switches role.
"""

APP_ROLE = "portcullis_app"
SYSTEM_ROLE = "portcullis_system"
TENANT_SETTING = "app.tenant_id"
