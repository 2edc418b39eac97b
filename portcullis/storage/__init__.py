"""Buckets, permissions, uploads (quarantine → scan → file), files and egress."""
