"""Authentication and authorization: tokens, passwords, permissions, revocation, use cases."""
