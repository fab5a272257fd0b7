"""Health establishments: who an event comes from.

The establishment id is a FINESS number (9 characters: department, category, sequence; the
Corsican departments use 2A and 2B). The 18 French regions are those of the regional health
agencies (ARS) that qualify declarations.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from schemas.limits import Name

FinessId = Annotated[str, StringConstraints(pattern=r"^(?:\d{2}|2A|2B)\d{7}$")]


class Region(StrEnum):
    """The 18 regions, by a slug usable in index alias names (``vigie-events-<region>``)."""

    AUVERGNE_RHONE_ALPES = "auvergne-rhone-alpes"
    BOURGOGNE_FRANCHE_COMTE = "bourgogne-franche-comte"
    BRETAGNE = "bretagne"
    CENTRE_VAL_DE_LOIRE = "centre-val-de-loire"
    CORSE = "corse"
    GRAND_EST = "grand-est"
    HAUTS_DE_FRANCE = "hauts-de-france"
    ILE_DE_FRANCE = "ile-de-france"
    NORMANDIE = "normandie"
    NOUVELLE_AQUITAINE = "nouvelle-aquitaine"
    OCCITANIE = "occitanie"
    PAYS_DE_LA_LOIRE = "pays-de-la-loire"
    PROVENCE_ALPES_COTE_D_AZUR = "provence-alpes-cote-d-azur"
    GUADELOUPE = "guadeloupe"
    MARTINIQUE = "martinique"
    GUYANE = "guyane"
    LA_REUNION = "la-reunion"
    MAYOTTE = "mayotte"


class EstablishmentType(StrEnum):
    """Kinds of health structures, as the national registry classifies them."""

    UNIVERSITY_HOSPITAL = "university_hospital"
    HOSPITAL = "hospital"
    PRIVATE_CLINIC = "private_clinic"
    NURSING_HOME = "nursing_home"
    LABORATORY = "laboratory"
    RADIOTHERAPY_CENTRE = "radiotherapy_centre"
    # Structures that are not health establishments but may (and will have to) declare:
    # the national report separates them ("84 % of reports came from establishments").
    HEALTH_PROFESSIONAL = "health_professional"
    """A health professional's practice (doctor, nurse, pharmacist...)."""
    OTHER_STRUCTURE = "other_structure"
    """Any other health or medico-social structure (network, hosting provider, GCS...)."""

    @property
    def is_health_establishment(self) -> bool:
        return self in HEALTH_ESTABLISHMENT_TYPES


HEALTH_ESTABLISHMENT_TYPES: frozenset[EstablishmentType] = frozenset({
    EstablishmentType.UNIVERSITY_HOSPITAL,
    EstablishmentType.HOSPITAL,
    EstablishmentType.PRIVATE_CLINIC,
    EstablishmentType.NURSING_HOME,
    EstablishmentType.LABORATORY,
    EstablishmentType.RADIOTHERAPY_CENTRE,
})
"""The types counted among the 3,036 health establishments of the national registry."""


def is_health_establishment(kind: EstablishmentType | str) -> bool:
    """True for a health establishment, False for other reporting structures.

    Accepts the raw string too, as read back from Elasticsearch; unknown values are not
    establishments.
    """
    try:
        return EstablishmentType(kind) in HEALTH_ESTABLISHMENT_TYPES
    except ValueError:
        return False


class Organization(BaseModel):
    """The establishment an event, detection or incident belongs to (ECS ``organization``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: FinessId
    name: Name
    type: EstablishmentType
    region: Region
