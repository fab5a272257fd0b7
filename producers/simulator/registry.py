"""A synthetic national registry of establishments, deterministic for a seed.

Real FINESS numbers are public but tying a simulated attack to a real hospital would be
misleading in screenshots and reports; ids here are FINESS-shaped (department + 7 digits) and
names are built from the region's main towns. The default count, 3,036, is the number of health
establishments the 2019 article counts; the type mix follows the French hospital landscape
(32 university hospitals, public hospitals, private clinics, nursing homes, laboratories and
radiotherapy centres).
"""

from __future__ import annotations

import random

from schemas.organization import EstablishmentType, Organization, Region

DEFAULT_COUNT = 3036

# Share of each type in the registry (per 3,036).
TYPE_MIX: dict[EstablishmentType, int] = {
    EstablishmentType.UNIVERSITY_HOSPITAL: 32,
    EstablishmentType.HOSPITAL: 1300,
    EstablishmentType.PRIVATE_CLINIC: 1000,
    EstablishmentType.NURSING_HOME: 450,
    EstablishmentType.LABORATORY: 180,
    EstablishmentType.RADIOTHERAPY_CENTRE: 74,
}

_TYPE_LABEL = {
    EstablishmentType.UNIVERSITY_HOSPITAL: "CHU",
    EstablishmentType.HOSPITAL: "Centre hospitalier",
    EstablishmentType.PRIVATE_CLINIC: "Clinique",
    EstablishmentType.NURSING_HOME: "EHPAD",
    EstablishmentType.LABORATORY: "Laboratoire de biologie médicale",
    EstablishmentType.RADIOTHERAPY_CENTRE: "Centre de radiothérapie",
}

# Region → (weight ~ population in hundreds of thousands, departments, towns).
REGIONS: dict[Region, tuple[int, tuple[str, ...], tuple[str, ...]]] = {
    Region.AUVERGNE_RHONE_ALPES: (80, ("01", "03", "38", "42", "63", "69", "73", "74"),
                                  ("Lyon", "Grenoble", "Saint-Étienne", "Clermont-Ferrand")),
    Region.BOURGOGNE_FRANCHE_COMTE: (28, ("21", "25", "39", "58", "71", "89"),
                                     ("Dijon", "Besançon", "Chalon-sur-Saône")),
    Region.BRETAGNE: (34, ("22", "29", "35", "56"), ("Rennes", "Brest", "Vannes", "Quimper")),
    Region.CENTRE_VAL_DE_LOIRE: (26, ("18", "28", "36", "37", "41", "45"),
                                 ("Tours", "Orléans", "Bourges")),
    Region.CORSE: (3, ("2A", "2B"), ("Ajaccio", "Bastia")),
    Region.GRAND_EST: (55, ("08", "10", "51", "54", "57", "67", "68", "88"),
                       ("Strasbourg", "Reims", "Metz", "Nancy", "Mulhouse")),
    Region.HAUTS_DE_FRANCE: (60, ("02", "59", "60", "62", "80"),
                             ("Lille", "Amiens", "Roubaix", "Dunkerque")),
    Region.ILE_DE_FRANCE: (122, ("75", "77", "78", "91", "92", "93", "94", "95"),
                           ("Paris", "Créteil", "Versailles", "Saint-Denis", "Évry")),
    Region.NORMANDIE: (33, ("14", "27", "50", "61", "76"), ("Rouen", "Caen", "Le Havre")),
    Region.NOUVELLE_AQUITAINE: (60, ("16", "17", "19", "24", "33", "40", "47", "64", "86", "87"),
                                ("Bordeaux", "Limoges", "Poitiers", "Pau")),
    Region.OCCITANIE: (59, ("09", "11", "12", "30", "31", "34", "46", "65", "66", "81", "82"),
                       ("Toulouse", "Montpellier", "Nîmes", "Perpignan")),
    Region.PAYS_DE_LA_LOIRE: (38, ("44", "49", "53", "72", "85"),
                              ("Nantes", "Angers", "Le Mans")),
    Region.PROVENCE_ALPES_COTE_D_AZUR: (51, ("04", "05", "06", "13", "83", "84"),
                                        ("Marseille", "Nice", "Toulon", "Avignon")),
    Region.GUADELOUPE: (4, ("971",), ("Pointe-à-Pitre", "Basse-Terre")),
    Region.MARTINIQUE: (4, ("972",), ("Fort-de-France",)),
    Region.GUYANE: (3, ("973",), ("Cayenne",)),
    Region.LA_REUNION: (9, ("974",), ("Saint-Denis", "Saint-Pierre")),
    Region.MAYOTTE: (3, ("976",), ("Mamoudzou",)),
}


def generate_registry(count: int = DEFAULT_COUNT, seed: int = 0) -> list[Organization]:
    """``count`` establishments with unique FINESS-like ids; the same seed gives the same list."""
    if count < 1:
        raise ValueError("count must be at least 1")
    rng = random.Random(f"registry:{seed}")
    total_mix = sum(TYPE_MIX.values())
    types: list[EstablishmentType] = []
    for kind, share in TYPE_MIX.items():
        types += [kind] * max(1 if count >= len(TYPE_MIX) else 0, round(count * share / total_mix))
    types = (types + [EstablishmentType.HOSPITAL] * count)[:count]
    rng.shuffle(types)
    regions = list(REGIONS)
    weights = [REGIONS[r][0] for r in regions]
    seen: set[str] = set()
    out: list[Organization] = []
    for index, kind in enumerate(types):
        region = rng.choices(regions, weights)[0]
        _, departments, towns = REGIONS[region]
        while True:
            department = rng.choice(departments)  # 2 characters, 3 overseas (971...)
            digits = 9 - len(department)
            finess = f"{department}{rng.randrange(10**digits):0{digits}d}"
            if finess not in seen:
                seen.add(finess)
                break
        name = f"{_TYPE_LABEL[kind]} {rng.choice(towns)} {index + 1:04d}"
        out.append(Organization(id=finess, name=name, type=kind, region=region))
    return out
