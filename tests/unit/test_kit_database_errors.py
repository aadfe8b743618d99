"""Which database errors mean "cannot be reached just now" (``Unavailable``, a 503 to retry) and which are a
statement refused (``kit.db.database_unavailable``): SQLAlchemy's wrapped errors, psycopg2's own when the kit
sent the statement outside SQLAlchemy's handling, and a connection found dead earlier in the transaction."""

from __future__ import annotations

import sqlite3
import sys

import psycopg2
import pytest
from sqlalchemy.exc import (
    DatabaseError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
)

from services.kit.db import database_unavailable, unavailable_instead
from services.kit.errors import Unavailable

LOST = "server closed the connection unexpectedly"


@pytest.mark.parametrize(("error", "unavailable"), [
    (OperationalError("COMMIT", None, psycopg2.OperationalError(LOST)), True),
    (InterfaceError("SELECT 1", None, psycopg2.InterfaceError("connection already closed")), True),
    (OperationalError("COMMIT", None, psycopg2.OperationalError(LOST), connection_invalidated=True), True),
    (DatabaseError("SELECT 1", None, psycopg2.DatabaseError("no message"), connection_invalidated=True), True),
    (psycopg2.OperationalError(LOST), True),  # sent by the kit from an engine event (the inbox check's BEGIN)
    (psycopg2.InterfaceError("connection already closed"), True),
    (DisconnectionError("pooled connection was dropped"), True),
    (PendingRollbackError("Can't reconnect until invalid transaction is rolled back.", code="8s2b"), True),
    (PendingRollbackError("This Session's transaction has been rolled back due to a previous exception during "
                          "flush.", code="7s2a"), False),  # the flush's own error decides, not this one
    (IntegrityError("INSERT", None, psycopg2.IntegrityError("duplicate key")), False),
    (DatabaseError("SELECT 1", None, psycopg2.DatabaseError("no message")), False),
    (psycopg2.IntegrityError("duplicate key"), False),
    (OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")), False),
    (ValueError("not a database error"), False),
])
def test_which_database_errors_mean_unreachable(error, unavailable):
    assert database_unavailable(error) is unavailable


def test_an_unreachable_database_becomes_unavailable_with_its_cause_and_others_stay():
    lost = psycopg2.OperationalError(LOST)
    try:
        raise lost
    except psycopg2.OperationalError:
        exc_info = sys.exc_info()
    replaced = unavailable_instead(exc_info)
    assert isinstance(replaced[1], Unavailable) and replaced[1].__cause__ is lost
    assert replaced[1].details["retry_after"] == 5
    refused = (IntegrityError, IntegrityError("INSERT", None, psycopg2.IntegrityError("duplicate key")), None)
    assert unavailable_instead(refused) is refused
    assert unavailable_instead(None) is None
