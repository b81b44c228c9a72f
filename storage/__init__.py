"""cityhub storage: asyncpg pool, migrations, queries, embedded PostgreSQL, attachments."""
