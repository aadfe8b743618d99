"""The notifications service (first piece): a welcome delivery for every enrolled member."""

from __future__ import annotations

from typing import Any

from services.kit import Database, Service, event_handler, rpc
from services.kit.clock import utcnow
from services.kit.schemas import page_limit
from services.kit.telemetry import counter
from services.notifications import deliveries

QUEUED = counter("careloop_notifications_queued_total", "Messages queued", ("journey",))


class NotificationsService(Service):
    name = "notifications"
    db = Database()

    @event_handler("members", "member_enrolled")
    def on_member_enrolled(self, event: dict[str, Any]) -> None:
        now = utcnow()
        if deliveries.queue(self.db.session, event["member_id"], "welcome", event["member_id"], now, now):
            QUEUED.labels("welcome").inc()

    @rpc
    def deliveries(self, member_id: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        rows, next_cursor = deliveries.history(self.db.session, member_id, page_limit(limit), cursor)
        return {"items": [deliveries.view(row) for row in rows], "next_cursor": next_cursor}
