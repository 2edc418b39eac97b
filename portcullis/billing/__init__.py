"""Billing: profiles (CPF/CNPJ), daily usage, monthly invoices the database keeps immutable
and gaplessly numbered, payments, void, PDF documents and dunning (overdue → suspension)."""
