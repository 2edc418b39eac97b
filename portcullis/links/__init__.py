"""Share links: opaque, expiring, revocable URLs that stream a stored object."""
