"""Readers that turn a data directory's files into one RawDataset (trainer/sources/raw.py):
raw tables in the columnar engine (trainer/cleaning/columnar.py).

``bx_reader`` (Book-Crossing), ``openlibrary`` (its dumps), ``goodbooks``
(goodbooks-10k), ``generic`` (your own ``interactions.csv`` + ``items.csv``) and
``feedback`` (the servers' rating log); ``lines`` reads a file's lines into the
engine; ``ingest`` picks the reader for a directory.
"""
