"""Encounter ⇄ visit: a FHIR Encounter is a visit of the records service; creating one is an HIS's bill.

- ``identifier``: the HIS's encounter id is the visit's bill id (unique in the group): a create with the same
  identifier completes the same visit once, however often it is sent (the bill webhook's path,
  ``records.complete_visit``); read back under ``BILL_SYSTEM`` (the sender's system is not kept).
- ``status``: booked→planned, arrived→arrived, in_treatment→in-progress, completed→finished,
  cancelled→cancelled, no_show→cancelled; a create must be ``finished`` (a completed visit).
- ``subject``: ``Patient/<member id>``; ``serviceProvider``: ``Organization/<branch>``;
  ``participant.individual``: ``Practitioner/<doctor id>``; ``period``: visit time to completion.
- the bill: a ``contained`` Invoice (``lineItem``: the item category under ``CATEGORY_SYSTEM`` and the HIS's
  item code as coding, the amount as the ``base`` price component; payments as ``PAYMENT_EXTENSION``
  extensions with ``method`` and ``amount``). Money is decimal in FHIR and whole minor units here: an amount
  with more decimals than the currency has is refused (422), never rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from fhir.resources.R4B.encounter import Encounter

from gateway.fhir.http import validated
from services.kit.errors import Invalid

BILL_SYSTEM = "urn:careloop:bill"
CATEGORY_SYSTEM = "urn:careloop:item-category"
KIND_SYSTEM = "urn:careloop:visit-kind"
PAYMENT_EXTENSION = "urn:careloop:fhir:payment"
TO_FHIR_STATUS = {"booked": "planned", "arrived": "arrived", "in_treatment": "in-progress",
                  "completed": "finished", "cancelled": "cancelled", "no_show": "cancelled"}
AMBULATORY = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"}


def _reference_id(reference: Any, prefix: str, field: str) -> str:
    if reference is None or not (reference.reference or "").startswith(prefix + "/"):
        raise Invalid(f"{field} must be a reference {prefix}/<id>.", {field: [f"{prefix}/<id>"]})
    return reference.reference.removeprefix(prefix + "/")


def minor_units(money: Any, field: str) -> tuple[int, str]:
    """FHIR Money (decimal) as whole minor units of its currency; more decimals than it has: 422."""
    if money is None or money.value is None or not money.currency:
        raise Invalid(f"{field} needs a value and a currency.", {field: ["value and currency"]})
    try:
        value = Decimal(str(money.value))
        precision = get_currency_precision(money.currency)
    except (InvalidOperation, ValueError):
        raise Invalid(f"{field} is not an amount.", {field: ["Not an amount."]}) from None
    minor = value.scaleb(precision)
    if minor != minor.to_integral_value():
        raise Invalid(f"{field} has more decimals than {money.currency} has.", {field: [f"At most {precision} decimals."]})
    return int(minor), money.currency


def _bill(encounter: Encounter) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    invoices = [item for item in encounter.contained or () if item.get_resource_type() == "Invoice"]
    if not invoices:
        return [], [], None
    invoice, items, payments, currencies = invoices[0], [], [], set()
    for n, line in enumerate(invoice.lineItem or ()):
        codings = (line.chargeItemCodeableConcept.coding or ()) if line.chargeItemCodeableConcept else ()
        category = next((c.code for c in codings if c.system == CATEGORY_SYSTEM), None)
        code = next((c.code for c in codings if c.system != CATEGORY_SYSTEM and c.code), category)
        base = next((p for p in line.priceComponent or () if p.type == "base"), None)
        if category is None or base is None:
            raise Invalid("Each Invoice line needs its category and a base price.",
                          {f"Invoice.lineItem[{n}]": [f"coding under {CATEGORY_SYSTEM}, priceComponent base"]})
        amount, currency = minor_units(base.amount, f"Invoice.lineItem[{n}].priceComponent.amount")
        items.append({"category": category, "code": code, "amount_minor": amount})
        currencies.add(currency)
    for n, extension in enumerate(e for e in invoice.extension or () if e.url == PAYMENT_EXTENSION):
        parts = {part.url: part for part in extension.extension or ()}
        if "method" not in parts or "amount" not in parts:
            raise Invalid("A payment needs method and amount.", {f"Invoice.payment[{n}]": ["method, amount"]})
        amount, currency = minor_units(parts["amount"].valueMoney, f"Invoice.payment[{n}].amount")
        payments.append({"method": parts["method"].valueCode, "amount_minor": amount})
        currencies.add(currency)
    if len(currencies) > 1:
        raise Invalid("One currency per bill.", {"Invoice": ["One currency."]})
    return items, payments, (currencies.pop() if currencies else None)


def bill(body: Any) -> dict[str, Any]:
    """A finished Encounter with its contained Invoice as records' ``BillSchema`` (``complete_visit``)."""
    encounter = validated(Encounter, body, "Encounter")
    if encounter.status != "finished":
        raise Invalid("Only a finished Encounter (a completed visit with its bill) can be created.",
                      {"status": ["Must be finished."]})
    identifiers = [item.value for item in encounter.identifier or () if item.value]
    if not identifiers:
        raise Invalid("The HIS's encounter identifier is needed (it makes a resend harmless).",
                      {"identifier": ["Required."]})
    items, payments, currency = _bill(encounter)
    doctor = None
    for participant in encounter.participant or ():
        if participant.individual is not None and (participant.individual.reference or "").startswith("Practitioner/"):
            doctor = participant.individual.reference.removeprefix("Practitioner/")
            break
    kind = next((c.code for t in encounter.type or () for c in t.coding or () if c.system == KIND_SYSTEM), None)
    return {
        "bill_id": identifiers[0], "member_id": _reference_id(encounter.subject, "Patient", "subject"),
        "branch": _reference_id(encounter.serviceProvider, "Organization", "serviceProvider"),
        "doctor_id": doctor, "kind": kind, "currency": currency or "",
        "completed_at": encounter.period.end.isoformat() if encounter.period and encounter.period.end else None,
        "items": items, "payments": payments,
    }


def _money(minor: int, currency: str) -> dict[str, Any]:
    precision = get_currency_precision(currency)
    return {"value": float(Decimal(minor).scaleb(-precision)), "currency": currency}


def resource(visit: dict[str, Any]) -> dict[str, Any]:
    """The FHIR Encounter of a visit (records' ``VisitSchema`` answer)."""
    encounter: dict[str, Any] = {
        "resourceType": "Encounter", "id": visit["id"], "status": TO_FHIR_STATUS[visit["status"]],
        "class": AMBULATORY, "subject": {"reference": f"Patient/{visit['member_id']}"},
        "serviceProvider": {"reference": f"Organization/{visit['branch']}"},
        "type": [{"coding": [{"system": KIND_SYSTEM, "code": visit["kind"]}]}],
        "period": {key: value for key, value in (("start", visit.get("visit_at")), ("end", visit.get("completed_at")))
                   if value},
    }
    if visit.get("doctor_id"):
        encounter["participant"] = [{"individual": {"reference": f"Practitioner/{visit['doctor_id']}"}}]
    if visit.get("bill_id"):
        currency = visit["currency"]
        encounter["identifier"] = [{"system": BILL_SYSTEM, "value": visit["bill_id"]}]
        invoice: dict[str, Any] = {"resourceType": "Invoice", "id": "bill", "status": "balanced",
                                   "totalGross": _money(visit["total_minor"], currency)}
        if visit.get("items"):
            invoice["lineItem"] = [{
                "chargeItemCodeableConcept": {"coding": [{"system": CATEGORY_SYSTEM, "code": item["category"]},
                                                         {"code": item["code"]}]},
                "priceComponent": [{"type": "base", "amount": _money(item["amount_minor"], currency)}]}
                for item in visit["items"]]
        if visit.get("payments"):
            invoice["extension"] = [{"url": PAYMENT_EXTENSION, "extension": [
                {"url": "method", "valueCode": payment["method"]},
                {"url": "amount", "valueMoney": _money(payment["amount_minor"], currency)}]}
                for payment in visit["payments"]]
        encounter["contained"] = [invoice]
    if not encounter["period"]:
        del encounter["period"]
    return encounter
