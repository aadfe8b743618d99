"""Bulk import into CareLoop from the sheets clinics keep (issue 19): members, points and stored-value opening
balances, and past visits.

- ``values``: the values as typed (dates, money, points, genders, document kinds); ``columns``: which column is
  which field (aliases in the four languages, or a mapping) and a row as the owning service's input. No I/O.
- ``sheets``: rows streamed out of CSV (UTF-8, BOM, GB18030, Big5) and ``.xlsx`` files.
- ``jobs``: the jobs on the interfaces database, their dry run and commit in batches (one RPC per batch).
- ``visits``: the visits kind: a bill's lines read and kept together, each bill checked and stored by records.
- ``__main__``: the command line, ``python -m services.interfaces.imports members.xlsx --dry-run``.

Interfaces never owns a member, a balance or a record: every row becomes the members, points or records
service's input, checked by its rules.
"""
