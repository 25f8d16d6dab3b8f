"""Readers that turn a data directory's files into one RawDataset (trainer/sources/raw.py).

``generic``: bring your own data, written as ``interactions.csv`` (+ ``items.csv``).
The Book-Crossing, goodbooks-10k, Open Library and feedback readers still live
beside the pipeline (trainer/sources/bx_reader.py, goodbooks.py, openlibrary.py,
feedback.py); trainer/sources/ingest.py picks the reader for a directory.
"""
