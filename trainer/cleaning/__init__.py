"""Cleaning: ISBNs normalised, editions merged into works, subjects reduced, users
and ratings checked; each rule counted in the report."""
