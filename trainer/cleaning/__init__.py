"""Cleaning: ISBNs normalised, editions merged into works, subjects reduced, users
and ratings checked; each rule counted in the report. The rules run in DuckDB
(``columnar``), the shared text rules as registered Python functions (``udfs``)."""
