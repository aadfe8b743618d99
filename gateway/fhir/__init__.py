"""The FHIR R4 facade: gateway routes under ``/fhir`` that map FHIR resources to the services' RPCs and back.

Every resource's mapping is in this package, one module per resource kind, so a reader finds it in one place:

- ``http.py``: ``fhir_route`` (the gateway's ``@route`` with FHIR manners: ``application/fhir+json`` in and
  out, errors as ``OperationOutcome``, what the route does for the CapabilityStatement), bundles and paging;
- ``patient.py``: Patient ⇄ member (identifiers, telecom, name, gender, birth date, managing branch);
- ``capability.py``: the CapabilityStatement, generated from the routes (``GET /fhir/metadata``);
- ``routes.py``: the routes (a mixin of ``gateway.service.GatewayService``).

Payloads are validated with ``fhir.resources.R4B`` (FHIR 4.3 models, the nearest to R4 that the library has;
never its R5 default). The services stay the owners of the data: the facade holds no rule.
"""
