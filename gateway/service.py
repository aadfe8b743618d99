"""The gateway: one HTTP front door for staff and the HIS/EMR, mapping routes to service RPCs.

It holds no business rule. Routes live in ``gateway/routes/<service>.py`` as mixins, composed here; the FHIR
facade's in ``gateway/fhir/routes.py``.
"""

from __future__ import annotations

from nameko.dependency_providers import Config

from gateway.auth import Authenticator
from gateway.console.campaigns import CampaignPages
from gateway.console.earning import ConsoleEarning
from gateway.console.imports import ConsoleImports
from gateway.console.journeys import JourneyPages
from gateway.console.pages import ConsolePages
from gateway.fhir.routes import FhirRoutes
from gateway.member.pages import MemberPages
from gateway.routes.access import AccessRoutes
from gateway.routes.auth import AuthRoutes
from gateway.routes.campaigns import CampaignRoutes
from gateway.routes.earning import EarningRoutes
from gateway.routes.exports import ExportRoutes
from gateway.routes.families import FamilyRoutes
from gateway.routes.identity import IdentityRoutes
from gateway.routes.imports import ImportRoutes
from gateway.routes.integrations import IntegrationRoutes
from gateway.routes.journeys import JourneyRoutes
from gateway.routes.links import AppointmentLinkRoutes
from gateway.routes.members import MemberRoutes
from gateway.routes.notifications import NotificationRoutes
from gateway.routes.operations import OperationRoutes
from gateway.routes.points import PointsRoutes
from gateway.routes.receipts import ReceiptRoutes
from gateway.routes.records import RecordRoutes
from gateway.routes.staff import StaffRoutes
from gateway.routes.subscriptions import SubscriptionRoutes
from gateway.routes.waitlist import WaitlistRoutes
from services.kit.db import Database
from services.kit.telemetry import Telemetry


class GatewayService(OperationRoutes, MemberRoutes, PointsRoutes, RecordRoutes, NotificationRoutes, AuthRoutes,
                     StaffRoutes, AccessRoutes, IntegrationRoutes, IdentityRoutes, ReceiptRoutes,
                     WaitlistRoutes, FamilyRoutes, SubscriptionRoutes, ConsolePages, FhirRoutes, ImportRoutes,
                     ExportRoutes, MemberPages, AppointmentLinkRoutes, JourneyRoutes, CampaignRoutes,
                     CampaignPages, JourneyPages, ConsoleImports, EarningRoutes, ConsoleEarning):
    name = "gateway"
    config = Config()
    db = Database()
    auth = Authenticator()
    telemetry = Telemetry()
