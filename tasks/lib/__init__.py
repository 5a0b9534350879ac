"""Libraries that several domains share (a library, not a domain: it has no DOMAIN)."""
