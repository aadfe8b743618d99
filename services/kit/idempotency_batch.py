"""The answers of many idempotent items stored at once: one statement for a batch instead of one per item.

A command that claims keys itself, one per item of a batch (``kit.idempotency.claim_many``: an import's rows,
``members.batches``), stores each item's answer. ``store_answers`` leaves them for the commit
(``kit.commit.at_commit``) as one ``UPDATE ... FROM unnest`` on PostgreSQL, however many items; elsewhere it
stores them one by one (``kit.idempotency.store_answer``). The guarantees are ``store_answer``'s: written in
the command's transaction, dropped with it or with the savepoint they were left in.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from services.kit.commit import AtCommit, at_commit
from services.kit.idempotency import store_answer

_STORE_ANSWERS = AtCommit("UPDATE kit_idempotency SET response = answers.response "
                          "FROM unnest(CAST(:claim_ids AS bigint[]), CAST(:answers AS text[])) "
                          "AS answers(id, response) WHERE kit_idempotency.id = answers.id")


def store_answers(session: Session, answers: list[tuple[int, Any]]) -> None:
    """Keep each ``(claim id, answer)``'s answer as its claimed key's answer, written with the commit."""
    if not answers:
        return
    if session.get_bind().dialect.name != "postgresql":
        for claim_id, answer in answers:
            store_answer(session, claim_id, answer)
        return
    at_commit(session, _STORE_ANSWERS, {"claim_ids": [claim_id for claim_id, _answer in answers],
                                        "answers": [json.dumps(answer) for _claim_id, answer in answers]})
