"""Tenants: the companies that own everything else."""
