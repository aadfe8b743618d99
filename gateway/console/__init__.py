"""The staff console: server-rendered pages under ``/console``, served by the gateway itself.

Same sign-in, sessions, roles and branches as the API, and the same RPCs as the API routes (never a
second path to the data). A room per concern:

- ``cookies.py`` — the console's cookie (bound to a staff session of ``gateway.auth``) and its CSRF
  tokens, signed with the gateway's token keys. Pure.
- ``http.py`` — the ``@page`` entrypoint: cookie authentication, permission × branch, CSRF on every
  POST, security headers (CSP without inline scripts), HTML errors.
- ``pages.py`` — ``ConsolePages``, the pages (a mixin of ``GatewayService`` like the route modules);
  ``campaigns.py`` (``CampaignPages``: earning rules, campaigns) and ``journeys.py`` (``JourneyPages``: composed
  journeys) are the programme settings' other tabs; ``programme_form.py`` and ``campaign_form.py`` turn their
  forms into what the services take and back (pure).
- ``i18n.py`` — the four languages' message catalogues, dates and money through Babel.
- ``templates/`` (Jinja2, autoescaped) and ``static/`` (CSS, the console's script, uPlot vendored with
  its licence for the KPI charts; nothing from a CDN).
"""
