"""Turning credentials into an identity, and the guards views use."""
