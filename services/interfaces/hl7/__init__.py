"""HL7 v2 (2.3 to 2.5.1) from a HIS: received over MLLP (``mllp.py``, in the interfaces process) or one
message per ``POST /v1/hl7`` (the gateway), answered with an ACK.

- ``messages.py``: the pure part — bytes to text by MSH-18, the header, what a message asks
  (a patient from PID, a merge from MRG, a bill from PV1 and FT1, an appointment from SCH, AIS and AIP), and
  the ACK (AA / AE with ERR / AR);
- ``receive.py``: one message taken — checked, claimed in the log, done through the owning services, answered;
- ``log.py``: the message log (facility + control id → the ACK given), which makes a resend harmless;
- ``patients.py``: the one place that turns a PID into a member: the identity rule (``reviews.identify``) with
  PID-3 as an identifier under ``urn:careloop:his:<MSH-4>``, and the member holding such an identifier
  (members' ``find_by_identifier``); ``appointments.py``: which appointment a facility's SCH-1 was booked as;
- ``mllp.py``: the MLLP listener, a nameko entrypoint (an eventlet server in the service's container).
"""
