"""The gateway: one HTTP front door for staff and the HIS/EMR, mapping routes to service RPCs.

It holds no business rule. Routes live in ``gateway/routes/<service>.py`` as mixins, composed here.
"""

from __future__ import annotations

from nameko.dependency_providers import Config

from gateway.auth import Authenticator
from gateway.routes.members import MemberRoutes
from gateway.routes.notifications import NotificationRoutes
from gateway.routes.operations import OperationRoutes
from services.kit.db import Database
from services.kit.telemetry import Telemetry


class GatewayService(OperationRoutes, MemberRoutes, NotificationRoutes):
    name = "gateway"
    config = Config()
    db = Database()
    auth = Authenticator()
    telemetry = Telemetry()
