"""Django's PostgreSQL backend, failing fast through the connection pool (see ``base``)."""
