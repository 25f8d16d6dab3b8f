"""Every bound on a request field that drives work, in one place (issue 20).

A field over its bound is INVALID_ARGUMENT naming the field and the bound (a
``google.rpc.BadRequest`` field violation). The bounds are chosen so that the worst
call they allow costs at most ~50 ms of server CPU on a 30k-book catalogue
(``python -m bench.load hostile`` measures it per RPC); docs/serving.md and
docs/clients.md list them. Why each is where it is:

- ids and subject texts are far longer than any real one; the bound stops a 4 MB
  field from being hashed, normalised and echoed;
- lists (k, page sizes, favourites, filter lists) bound the per-item work of a call;
- SearchBooks' query: each distinct word is one pass over the catalogue's word index,
  so the words are bounded, and the characters bound each word's scan;
- Recommend's depth: a deeper page ranks the whole catalogue to reach it.
"""

from __future__ import annotations

from server.engine.paging import MAX_TOKEN_CHARS

# user_id, book_id (every RPC), AdminService's version, each filters.exclude_book_ids entry.
MAX_ID_CHARS = 64
# A subject id or name: ColdStart's favourite_subjects, filters.subject_ids, and
# ListSubjects' query (the longest real subject is a few dozen characters).
MAX_SUBJECT_TEXT = 200
# Books per list: Recommend, Similar, ColdStart (0 means DEFAULT_K).
MAX_K = 100
DEFAULT_K = 10
# SearchBooks and ListSubjects page sizes (0 means the default).
MAX_SEARCH_PAGE = 100
DEFAULT_SEARCH_PAGE = 20
MAX_SUBJECT_PAGE = 1000
DEFAULT_SUBJECT_PAGE = 100
# SearchBooks' query: characters, and words (whitespace-separated).
MAX_QUERY_CHARS = 256
MAX_QUERY_WORDS = 10
# ColdStart's favourite_subjects.
MAX_FAVOURITE_SUBJECTS = 20
# filters.subject_ids and filters.exclude_book_ids (every RPC that takes filters).
MAX_FILTER_SUBJECTS = 50
MAX_EXCLUDE_IDS = 1000
# Recommend: offset + k of a page (a page token past it is INVALID_ARGUMENT; the
# page that reaches it has no next_page_token).
MAX_RECOMMEND_DEPTH = 1000
# page_token (server/engine/paging.py, where tokens are read): characters.
MAX_PAGE_TOKEN_CHARS = MAX_TOKEN_CHARS

# (field, bound, what it bounds): the table docs/serving.md shows (tests compare them).
TABLE: tuple[tuple[str, int, str], ...] = (
    ("user_id, book_id, version", MAX_ID_CHARS, "characters"),
    ("k (Recommend, Similar, ColdStart)", MAX_K, "books per list"),
    ("page_size (SearchBooks)", MAX_SEARCH_PAGE, "books per page"),
    ("page_size (ListSubjects)", MAX_SUBJECT_PAGE, "subjects per page"),
    ("query (SearchBooks)", MAX_QUERY_CHARS, "characters"),
    ("query (SearchBooks)", MAX_QUERY_WORDS, "words"),
    ("query (ListSubjects)", MAX_SUBJECT_TEXT, "characters"),
    ("favourite_subjects (ColdStart)", MAX_FAVOURITE_SUBJECTS, "subjects"),
    ("favourite_subjects[i], filters.subject_ids[i]", MAX_SUBJECT_TEXT, "characters"),
    ("filters.subject_ids", MAX_FILTER_SUBJECTS, "subjects"),
    ("filters.exclude_book_ids", MAX_EXCLUDE_IDS, "ids"),
    ("filters.exclude_book_ids[i]", MAX_ID_CHARS, "characters"),
    ("page_token (Recommend)", MAX_RECOMMEND_DEPTH, "books deep (offset + k)"),
    ("page_token", MAX_PAGE_TOKEN_CHARS, "characters"),
)
