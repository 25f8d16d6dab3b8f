"""The normalized SQL store: SQLite embedded by default, MySQL/MariaDB via asyncmy."""
