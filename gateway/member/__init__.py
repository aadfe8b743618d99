"""The member page: members' own page under ``/m/`` on the gateway (mobile first), signed in by SMS code.

A room per concern, beside the staff console whose machinery it reuses (templates ``member_*.html`` and the
message catalogue in ``gateway/console/``; cookies and CSRF tokens from ``gateway.console.cookies``):

- ``codes.py`` — one-time codes (hashed, expiring, single use, limited per phone and address, lockout) and
  member sessions, on the gateway's store.
- ``http.py`` — the ``@member_page`` entrypoint: the member session named by the cookie, CSRF on every
  POST, the console's security headers, errors as pages in the member's language.
- ``pages.py`` — ``MemberPages``, the pages (a mixin of ``GatewayService``). Every page reads the session's
  member and no other: no page takes a member id from the request.
"""
