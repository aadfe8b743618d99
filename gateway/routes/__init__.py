"""The gateway's routes, one module per service they front; ``gateway.service`` composes them.

Adding a route::

    @route("GET", "/v1/follow-ups", "follow-ups:read", summary="...", tags=("records",),
           query=FollowUpQuerySchema, responses={200: FollowUpPageSchema, 404: None})
    def follow_ups(self, request: Request) -> Any:
        return self.records.follow_ups(load(FollowUpQuerySchema(), query_args(request)))

- The permission must be in ``gateway.permissions.GRANTS`` (or the route ``public=True``); the
  tests walk every route × role against that table by themselves.
- Mutating routes get the gateway's ``Idempotency-Key`` handling without asking (``idempotent=False``
  opts out); pass ``idempotency_key(request)`` on to an ``@idempotent`` RPC as well.
- ``webhook=True``: the route takes only HMAC-signed requests of a webhook integration.
- A ``branch`` path or query parameter is checked against the caller's branches
  (``branch_params=(...)`` names others); lists without one are the service's to scope.
- ``responses`` maps statuses to schemas (``None``: the standard error); the OpenAPI document and the
  schemathesis test read them, so an answer not declared there fails the tests.
"""
