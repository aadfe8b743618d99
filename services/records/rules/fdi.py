"""The dental chart in FDI two-digit notation, and what a clinician's marks do to it. No I/O.

Teeth: the first digit is the quadrant (1 upper right, 2 upper left, 3 lower left, 4 lower right;
5–8 the same for primary teeth), the second the position from the midline (1–8 permanent, 1–5
primary). Positions 1–3 are front teeth (incisors and canines), the rest back teeth.

Surfaces come in five slots, each named for the tooth: M (mesial); O (occlusal, back teeth) or I
(incisal, front teeth); D (distal); B (buccal, back teeth) or F (facial, front teeth); L (lingual,
lower teeth) or P (palatal, upper teeth). A letter that does not exist on the tooth is refused with
the letters that do, rather than guessed. Periodontal pockets are probed at six sites: mesial, middle
and distal on the cheek/lip side and on the tongue/palate side (e.g. MB, B, DB, ML, L, DL for 36).

A chart is ``{"36": {tooth state}}`` holding only teeth with something recorded. A mark records or
clears one finding on one tooth; ``apply_marks`` applies a list of marks in order and returns the new
chart and the changes (tooth, finding, before, after) for the chart's history.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from services.kit.errors import Invalid

QUADRANTS = {
    1: ("upper", "right", False), 2: ("upper", "left", False), 3: ("lower", "left", False),
    4: ("lower", "right", False), 5: ("upper", "right", True), 6: ("upper", "left", True),
    7: ("lower", "left", True), 8: ("lower", "right", True),
}
PERMANENT_NAMES = {1: "central incisor", 2: "lateral incisor", 3: "canine", 4: "first premolar",
                   5: "second premolar", 6: "first molar", 7: "second molar", 8: "third molar"}
PRIMARY_NAMES = {1: "central incisor", 2: "lateral incisor", 3: "canine", 4: "first molar", 5: "second molar"}
ALL_TEETH = tuple(quadrant * 10 + position for quadrant in QUADRANTS
                  for position in (PRIMARY_NAMES if QUADRANTS[quadrant][2] else PERMANENT_NAMES))

SURFACE_NAMES = {"M": "mesial", "O": "occlusal", "I": "incisal", "D": "distal", "B": "buccal", "F": "facial",
                 "L": "lingual", "P": "palatal"}
FINDINGS = ("caries", "filled", "missing", "crown", "implant", "root_canal", "mobility", "pocket_depth")
ACTIONS = ("record", "clear")
STATES = ("present", "missing", "implant")
MOBILITY_GRADES = (0, 1, 2, 3)  # Miller: 0 physiological, 1 slight, 2 moderate, 3 severe
MAX_POCKET_MM = 15

EMPTY: dict[str, Any] = {"state": "present", "caries": [], "filled": [], "crown": False, "root_canal": False,
                         "mobility": None, "pockets": {}}
# the name each part of a tooth's state has in the chart's history
HISTORY_NAMES = {"state": "state", "caries": "caries", "filled": "filled", "crown": "crown",
                 "root_canal": "root_canal", "mobility": "mobility", "pockets": "pocket_depth"}


class MarkError(ValueError):
    """One mark cannot be applied; ``field`` is the part of the mark at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Tooth:
    code: int
    upper: bool
    primary: bool
    anterior: bool
    name: str

    @property
    def surfaces(self) -> tuple[str, ...]:
        """The tooth's five surface letters, in charting order."""
        return ("M", "I" if self.anterior else "O", "D", "F" if self.anterior else "B", "P" if self.upper else "L")

    @property
    def sites(self) -> tuple[str, ...]:
        """The six probing sites: cheek/lip side mesial, middle, distal, then tongue/palate side."""
        outer, inner = ("F" if self.anterior else "B"), ("P" if self.upper else "L")
        return (f"M{outer}", outer, f"D{outer}", f"M{inner}", inner, f"D{inner}")

    def describe(self) -> str:
        return f"tooth {self.code} ({self.name})"


def tooth(value: Any) -> Tooth:
    """The tooth an FDI code names (``36`` or ``"36"``); ``MarkError`` for anything else."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if len(text) != 2 or not text.isdigit():
        raise MarkError("tooth", f"{value!r} is not an FDI tooth number (two digits, 11–48 or 51–85).")
    quadrant, position = int(text[0]), int(text[1])
    if quadrant not in QUADRANTS:
        raise MarkError("tooth", f"{text} is not an FDI tooth: the first digit (quadrant) must be 1–4 for "
                                 "permanent or 5–8 for primary teeth.")
    jaw, side, primary = QUADRANTS[quadrant]
    names = PRIMARY_NAMES if primary else PERMANENT_NAMES
    if position not in names:
        top = max(names)
        raise MarkError("tooth", f"{text} is not an FDI tooth: quadrant {quadrant} has "
                                 f"{'primary' if primary else 'permanent'} teeth {quadrant}1–{quadrant}{top}.")
    kind = "primary " if primary else ""
    return Tooth(code=quadrant * 10 + position, upper=jaw == "upper", primary=primary, anterior=position <= 3,
                 name=f"{jaw} {side} {kind}{names[position]}")


def _wrong_surface(t: Tooth, letter: str) -> str:
    allowed = ", ".join(t.surfaces)
    reasons = {
        "O": "it is a front tooth: its biting edge is I (incisal), not O (occlusal)",
        "I": "it is a back tooth: its chewing surface is O (occlusal), not I (incisal)",
        "B": "it is a front tooth: its lip side is F (facial), not B (buccal)",
        "F": "it is a back tooth: its cheek side is B (buccal), not F (facial)",
        "L": "it is an upper tooth: its inner side is P (palatal), not L (lingual)",
        "P": "it is a lower tooth: its inner side is L (lingual), not P (palatal)",
    }
    if letter in reasons:
        return f"{letter} is not a surface of {t.describe()}: {reasons[letter]}. Its surfaces are {allowed}."
    return f"{letter!r} is not a tooth surface. Surfaces of {t.describe()} are {allowed}."


def surfaces(t: Tooth, raw: Any) -> list[str]:
    """The surfaces named in ``raw`` (letters, any case, in any order), in charting order."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = list(raw)
    if not isinstance(raw, (list, tuple)):
        raise MarkError("surfaces", "surfaces must be a list of letters such as [\"M\", \"O\"].")
    wanted = set()
    for item in raw:
        letter = str(item).strip().upper()
        if letter not in t.surfaces:
            raise MarkError("surfaces", _wrong_surface(t, letter))
        wanted.add(letter)
    return [letter for letter in t.surfaces if letter in wanted]


def pocket_depths(t: Tooth, raw: Any, clearing: bool = False) -> dict[str, int]:
    """Probing depths in whole millimetres by site (``{"MB": 3, "DB": 5}``)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MarkError("depths", "depths must map sites to millimetres, e.g. {\"MB\": 3, \"B\": 2}.")
    depths = {}
    for site, value in raw.items():
        name = str(site).strip().upper()
        if name not in t.sites:
            raise MarkError("depths", f"{site!r} is not a probing site of {t.describe()}; "
                                      f"its sites are {', '.join(t.sites)}.")
        if clearing:
            depths[name] = 0
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POCKET_MM:
            raise MarkError("depths", f"Pocket depth at {name} must be whole millimetres from 0 to "
                                      f"{MAX_POCKET_MM}, not {value!r}.")
        depths[name] = value
    return {site: depths[site] for site in t.sites if site in depths}


def _not_on_missing(t: Tooth, state: dict[str, Any], finding: str) -> None:
    if state["state"] == "missing":
        raise MarkError("tooth", f"{t.describe()} is recorded as missing: record it present (clear 'missing') "
                                 f"or an implant before recording {finding.replace('_', ' ')}.")


def _only(mark: dict[str, Any], finding: str, allowed: tuple[str, ...]) -> None:
    for extra in ("surfaces", "grade", "depths"):
        if extra not in allowed and mark.get(extra) is not None:
            raise MarkError(extra, f"{extra} does not apply to {finding.replace('_', ' ')}.")


def apply_mark(before: dict[str, Any], t: Tooth, mark: dict[str, Any]) -> dict[str, Any]:
    """One tooth's state after ``mark`` (a new dict; ``before`` is left alone)."""
    finding, action = mark["finding"], mark.get("action", "record")
    after = copy.deepcopy(before)
    if finding in ("caries", "filled"):
        _only(mark, finding, ("surfaces",))
        chosen = surfaces(t, mark.get("surfaces"))
        if action == "clear":
            after[finding] = [s for s in after[finding] if chosen and s not in chosen]
            return after
        if not chosen:
            raise MarkError("surfaces", f"Name the surfaces with {finding} (of {', '.join(t.surfaces)}).")
        _not_on_missing(t, after, finding)
        if after["state"] == "implant":
            raise MarkError("tooth", f"{t.describe()} is an implant: it has no natural surfaces for {finding}.")
        after[finding] = [s for s in t.surfaces if s in set(after[finding]) | set(chosen)]
    elif finding == "missing":
        _only(mark, finding, ())
        if action == "record":
            return {**copy.deepcopy(EMPTY), "state": "missing"}
        if after["state"] == "missing":
            after["state"] = "present"
    elif finding == "implant":
        _only(mark, finding, ())
        if action == "record" and after["state"] != "implant":
            return {**copy.deepcopy(EMPTY), "state": "implant"}  # the natural tooth's findings are gone
        if action == "clear" and after["state"] == "implant":
            return {**copy.deepcopy(EMPTY), "state": "missing"}
    elif finding in ("crown", "root_canal"):
        _only(mark, finding, ())
        if action == "record":
            _not_on_missing(t, after, finding)
            if finding == "root_canal" and after["state"] == "implant":
                raise MarkError("tooth", f"{t.describe()} is an implant: it has no root canal.")
        after[finding] = action == "record"
    elif finding == "mobility":
        _only(mark, finding, ("grade",))
        if action == "clear":
            after["mobility"] = None
            return after
        grade = mark.get("grade")
        if isinstance(grade, bool) or grade not in MOBILITY_GRADES:
            raise MarkError("grade", f"Mobility grade must be one of 0, 1, 2, 3 (Miller), not {grade!r}.")
        _not_on_missing(t, after, finding)
        after["mobility"] = grade
    elif finding == "pocket_depth":
        _only(mark, finding, ("depths",))
        if action == "clear":
            sites = pocket_depths(t, mark.get("depths"), clearing=True)
            after["pockets"] = {s: d for s, d in after["pockets"].items() if sites and s not in sites}
            return after
        depths = pocket_depths(t, mark.get("depths"))
        if not depths:
            raise MarkError("depths", f"Give the depths by site (of {', '.join(t.sites)}).")
        _not_on_missing(t, after, finding)
        merged = {**after["pockets"], **depths}
        after["pockets"] = {site: merged[site] for site in t.sites if site in merged}
    else:
        raise MarkError("finding", f"{finding!r} is not a finding; findings are {', '.join(FINDINGS)}.")
    return after


def diff(code: int, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed on one tooth, one entry per finding, for the chart's history."""
    return [{"tooth": code, "finding": HISTORY_NAMES[key], "before": before[key], "after": after[key]}
            for key in EMPTY if before[key] != after[key]]


def apply_marks(chart: dict[str, dict[str, Any]], marks: list[dict[str, Any]]
                ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Apply ``marks`` in order to ``chart``; the new chart and the changes. All or nothing:
    ``Invalid`` names every mark that cannot be applied (``fields["marks"][index][field]``)."""
    result = copy.deepcopy(chart)
    changes: list[dict[str, Any]] = []
    errors: dict[str, dict[str, list[str]]] = {}
    for index, mark in enumerate(marks):
        try:
            t = tooth(mark.get("tooth"))
            key = str(t.code)
            before = {**EMPTY, **result.get(key, {})}
            after = apply_mark(before, t, mark)
        except MarkError as error:
            errors[str(index)] = {error.field: [error.message]}
            continue
        changes += diff(t.code, before, after)
        if after == EMPTY:
            result.pop(key, None)
        else:
            result[key] = after
    if errors:
        first = next(iter(errors.values()))
        message = next(iter(first.values()))[0]
        more = f" (and {len(errors) - 1} more marks)" if len(errors) > 1 else ""
        raise Invalid(f"The chart was not changed. {message}{more}", {"marks": errors})
    return result, changes


def recorded(chart: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded teeth in FDI order, each with its number, its name and its full state."""
    return [{"tooth": tooth(key).code, "name": tooth(key).name, **EMPTY, **chart[key]} for key in sorted(chart, key=int)]
