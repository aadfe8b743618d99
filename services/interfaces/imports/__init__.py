"""Bulk import into CareLoop from the sheets clinics keep (issue 19): members, points and stored-value opening
balances.

- ``values``: the values as typed (dates, money, points, genders, document kinds); ``columns``: which column is
  which field (aliases in the four languages, or a mapping) and a row as the owning service's input. No I/O.
- ``sheets``: rows streamed out of CSV (UTF-8, BOM, GB18030, Big5) and ``.xlsx`` files.
- ``jobs``: the jobs on the interfaces database, their dry run and commit in batches (one RPC per batch).
- ``__main__``: the command line, ``python -m services.interfaces.imports members.xlsx --dry-run``.

Interfaces never owns a member or a balance: every row becomes the members or points service's input, checked
by its rules.
"""
