"""Points' rules, without I/O (no session, no broker, no clock): plain values and frozen dataclasses in, values
out, table-tested in ``tests/unit``. ``programme`` (what a group may configure, parsed and checked), ``earning``
(what a visit, a review or an interaction earns; what a refund takes back), ``lots`` (expiry dates, which lots
a spend consumes), ``redemption`` (cash deduction limits, top-up offers, how a card payment splits)."""
