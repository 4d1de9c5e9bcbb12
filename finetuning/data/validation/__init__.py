"""The parts of dataset validation; the entry points are in ``finetuning.data.validate``.

Modules, one check each:
- ``report``: ``Severity``, ``Problem``, ``ValidationReport`` and the ``ProblemLog`` every
  checker reports through.
- ``reader``: lines to JSON objects (UTF-8, duplicates, blank lines) and records to the
  family's format and canonical messages (format detection, keys).
- ``messages``: roles, empty turns, reserved keywords.
- ``media``: image and video parts, per record and across the file.
- ``length``: token and character limits per record.
- ``validator``: the checkers composed for one file, and the whole-file limits.
"""
