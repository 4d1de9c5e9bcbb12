"""The local fine-tuning job service: a queue of ``train.py`` runs with SQLite state.

- ``service``: :class:`LocalJobService` (submit, status, list, cancel, serve, recovery).
- ``store``: the SQLite state database shared by every process.
- ``registry``: fine-tuned model ids to directories, and base model lookup.
- ``runner``: running one job in a subprocess and reading its progress.
"""
