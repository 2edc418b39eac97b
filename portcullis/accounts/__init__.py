"""People: users, their membership (role) in a tenant."""
