"""Database helpers: which errors are worth a retry, and an SQLite backend for several writers."""
