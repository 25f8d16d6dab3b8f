"""Serving past one machine: the shared control store and each replica's heartbeat
(docs/fleet.md). The rating log itself is bookrec/ratinglog, shared with the trainer."""
