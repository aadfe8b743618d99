"""Following a merged member's id to the member that stands for it now, the same way in every service.

A merge leaves the duplicate's id naming the survivor, and a survivor may be merged in turn: each
service keeps its own record of who was merged into whom and asks ``follow`` to walk it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from services.kit.errors import Invalid

Id = TypeVar("Id")

MERGE_CHAIN_LIMIT = 10
"""The most merges one id may have been carried through (a longer chain, or a loop, is refused)."""


def follow(next_of: Callable[[Id], Id | None], start: Id, limit: int = MERGE_CHAIN_LIMIT) -> list[Id]:
    """The ids from ``start`` to the member that stands for it (``[start]`` when it was never merged).

    ``next_of(id)`` answers the member ``id`` was merged into, or None. A chain longer than ``limit``
    merges, or one that comes back on itself, is ``Invalid``: no answer would be right.
    """
    chain = [start]
    while (following := next_of(chain[-1])) is not None:
        if len(chain) > limit or following in chain:
            raise Invalid(f"Member {start} was merged too many times over (or in a loop).",
                          {"member_id": ["Merge chain too long."]})
        chain.append(following)
    return chain
