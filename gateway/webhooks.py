"""Where ``gateway.auth.webhooks`` was: kept for the test harness (``tests/e2e/conftest.py`` and
``tests/e2e/test_api_properties.py`` do ``from gateway import webhooks``) until they import it from
``gateway.auth``; nothing in the gateway imports this module."""

from gateway.auth.webhooks import create_integration, signed_headers

__all__ = ["create_integration", "signed_headers"]
