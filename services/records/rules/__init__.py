"""Records' pure rules: no session, no broker, no clock (the moment is always an argument).

- ``lifecycle``: a visit's and an appointment's states, what a bill is worth, who may book when.
- ``fdi``: the FDI tooth numbering and what a chart mark does to a tooth.
- ``followups``: which callback a patient's state calls for, in whose queue, due when.
- ``recalls``: recall types and intervals, what resets a recall.
- ``satisfaction``: feedback levels, NPS, when a complaint must be answered.
- ``kpis``: the visit KPIs, derived from counts (``figures.py`` counts them in the database).
- ``effects``: what a completed visit should have done in points and members (the visit audit's judge).
- ``practice``: the clinic's timings and deadlines, read from the service's settings.
"""
