"""The records service: health profile, dental chart, visits, care plans, appointments, follow-ups,
feedback, the audit trail of health-data access, and the KPIs of visits."""
