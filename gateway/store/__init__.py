"""PostgreSQL state: the pool, migrations and one repository per aggregate."""
