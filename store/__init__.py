"""SQLite schema and queries: the only package that speaks SQL."""
