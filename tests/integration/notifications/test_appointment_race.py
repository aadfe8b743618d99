"""An appointment's ``appointment_booked`` and ``appointment_cancelled`` arriving together, handled by two
notifications replicas (PostgreSQL).

The booking queues a confirmation and reminders; the cancellation takes back what is queued for the
appointment. Handled at the same moment, the cancellation could look for messages the booking has not
committed yet. It cannot here: both handlers write the appointment's row first (one inserts it with
``ON CONFLICT DO NOTHING``, the other waits on its key and then reads and locks the row the first committed:
a booking after the cancellation queues nothing, a cancellation after the booking takes its messages back).
The test shows they were handled together, that neither had to be retried, and that no confirmation or
reminder is left for a cancelled appointment.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import utcnow
from services.notifications.service import NotificationsService
from services.records.events import AppointmentBooked, AppointmentCancelled
from tests.harness import events_handled, scalar, service_config, wait_for
from tests.integration.notifications.conftest import announce, notification_settings
from tests.integration.overlap import LockWaits

APPOINTMENTS = 100


@pytest.mark.timeout(240)
def test_a_booking_and_its_cancellation_arriving_together_leave_no_message_queued(start_service, imitations,
                                                                                   amqp_uri, rpc):
    settings = notification_settings(imitations)
    first = start_service(NotificationsService, "postgresql", **settings)
    start_service(NotificationsService, database_url=first.database_url, **settings)
    url = first.database_url
    publish = event_dispatcher(service_config(amqp_uri))
    starts = utcnow() + timedelta(days=3)
    booked_at, cancelled_at = utcnow(), utcnow() + timedelta(seconds=1)

    pairs = []
    for number in range(APPOINTMENTS):
        appointment = {"appointment_id": uuid.uuid4(), "member_id": uuid.uuid4(), "branch": "SH01",
                       "starts_at": starts + timedelta(minutes=number)}
        booking = (AppointmentBooked, announce(AppointmentBooked, occurred_at=booked_at, **appointment,
                                               doctor_id="dr-wang", service_category="cleaning",
                                               ends_at=starts + timedelta(minutes=number + 30)))
        cancelling = (AppointmentCancelled, announce(AppointmentCancelled, occurred_at=cancelled_at, **appointment,
                                                     reason="patient called"))
        pairs += [booking, cancelling] if number % 2 == 0 else [cancelling, booking]  # both orders

    def retried() -> float:
        return sum(events_handled("notifications", handler, "retried")
                   for handler in ("on_appointment_booked", "on_appointment_cancelled"))

    retried_before = retried()
    with LockWaits(url) as waits:
        for contract, body in pairs:  # an appointment's two events go out back to back
            publish(contract.producer, contract.event_type, body)
        wait_for(lambda: scalar(url, "SELECT count(*) FROM kit_inbox") == len(pairs), timeout=120, interval=0.2,
                 message="both replicas to apply every event")

    waited = waits.count("transactionid", "tuple")
    print(f"\n{APPOINTMENTS} appointments booked and cancelled at once: {waited} handlers waited for another's row")
    assert waited >= 10, f"only {waited} handlers waited for another: the events were not handled together"
    assert retried() == retried_before, "a handler failed on the appointment's key and was retried"
    assert scalar(url, "SELECT count(*) FROM appointments WHERE status = 'cancelled'") == APPOINTMENTS
    assert scalar(url, "SELECT count(*) FROM deliveries WHERE state = 'queued'") == 0
    # and each cause has had its messages at most once (the booking queued them once, or never)
    assert scalar(url, "SELECT count(*) FROM deliveries") == scalar(url, "SELECT count(DISTINCT dedupe_key) FROM "
                                                                         "deliveries")
    assert rpc().notifications.dead_letters() == []
