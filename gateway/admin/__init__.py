"""The admin commands: users, networks, memberships, tokens and revocations from a shell."""
