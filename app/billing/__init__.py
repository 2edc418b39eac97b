"""Billing routes: the profile, usage, invoices and their PDF; operators ' runs, payments, voids."""
