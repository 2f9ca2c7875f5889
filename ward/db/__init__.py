"""The database layer: migrations and the reading store (psycopg 3, PostgreSQL/TimescaleDB)."""
