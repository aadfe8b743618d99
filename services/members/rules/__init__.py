"""Members' pure rules: no session, no broker, no clock read — values in, values out, table-tested in
``tests/unit``. The programme document (``programme``), tiers and reviews (``tiers``), benefits and prices
(``benefits``), RFM segments (``segments``), and names, phones, cards and masks (``identity``)."""
