"""A year of declared incidents, calibrated to the figures of the 2019 article.

The national report must be checkable against known numbers, and the only published ones are
the observatory's: 693 incidents declared in two years (about 346 a year), 43 % of malicious
origin, 84 % declared by health establishments, 250–300 structures declaring. This generator
draws a year of :class:`~schemas.incident.Incident` records (``reported_via: declaration``)
whose counts hit those figures exactly (quotas, then a seeded shuffle), and produces them to
the compacted ``incidents`` topic, so that they reach Elasticsearch through the real sink.
Ids are deterministic for (year, seed): producing the same year twice overwrites it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from producers.simulator.registry import REGIONS
from runtime.kafka import DeliveryReport, KafkaConnection, produce_blocking
from runtime.topics import ensure_topics
from schemas.identity import stable_id
from schemas.incident import Impacts, Incident, ReportedVia, Status
from schemas.organization import EstablishmentType, Organization, Region
from schemas.taxonomy import Category, Severity, origin_of
from schemas.topics import INCIDENTS


@dataclass(frozen=True)
class Calibration:
    """The article's figures, per year."""

    incidents: int = 346  # 693 over two years
    malicious_share: float = 0.43
    health_share: float = 0.84
    structures: int = 275  # "only 250 to 300 structures" declare


# Within each origin, how categories split (an assumption: the article gives only the split
# malicious / other; these follow the CERT Santé observatory's usual ordering).
MALICIOUS_MIX: dict[Category, int] = {
    Category.MALICIOUS_CODE: 40, Category.FRAUD: 22, Category.INTRUSION: 14,
    Category.INTRUSION_ATTEMPTS: 10, Category.AVAILABILITY: 6,
    Category.INFORMATION_CONTENT_SECURITY: 5, Category.ABUSIVE_CONTENT: 3,
}
NON_MALICIOUS_MIX: dict[Category, int] = {
    Category.HARDWARE_OR_SOFTWARE_FAILURE: 52, Category.HUMAN_ERROR: 20,
    Category.SUPPLIER_FAILURE: 18, Category.ENVIRONMENT: 10,
}
TECHNIQUES: dict[Category, tuple[str, ...]] = {
    Category.MALICIOUS_CODE: ("T1486", "T1204", "T1059", "T1566"),
    Category.FRAUD: ("T1566", "T1534", "T1656"),
    Category.INTRUSION: ("T1078", "T1133", "T1021"),
    Category.INTRUSION_ATTEMPTS: ("T1110", "T1190"),
    Category.AVAILABILITY: ("T1498", "T1499"),
    Category.INFORMATION_CONTENT_SECURITY: ("T1530", "T1567"),
    Category.ABUSIVE_CONTENT: ("T1566",),
}
TITLES: dict[Category, str] = {
    Category.MALICIOUS_CODE: "Malware / ransomware infection",
    Category.FRAUD: "Phishing or fraudulent e-mail",
    Category.INTRUSION: "Compromised account or system",
    Category.INTRUSION_ATTEMPTS: "Intrusion attempt",
    Category.AVAILABILITY: "Denial of service",
    Category.INFORMATION_CONTENT_SECURITY: "Unauthorised access to health data",
    Category.ABUSIVE_CONTENT: "Spam campaign",
    Category.HARDWARE_OR_SOFTWARE_FAILURE: "Hardware or software failure",
    Category.HUMAN_ERROR: "Human error",
    Category.SUPPLIER_FAILURE: "Supplier or hosting provider failure",
    Category.ENVIRONMENT: "Environmental event (power, fire, flood)",
}
# Which of the four grounds for a mandatory report each category tends to touch.
IMPACTS: dict[Category, tuple[str, ...]] = {
    Category.MALICIOUS_CODE: ("availability", "integrity", "care_safety"),
    Category.FRAUD: ("confidentiality",),
    Category.INTRUSION: ("confidentiality", "integrity"),
    Category.INTRUSION_ATTEMPTS: ("availability",),
    Category.AVAILABILITY: ("availability",),
    Category.INFORMATION_CONTENT_SECURITY: ("confidentiality",),
    Category.ABUSIVE_CONTENT: ("availability",),
    Category.HARDWARE_OR_SOFTWARE_FAILURE: ("availability", "care_safety"),
    Category.HUMAN_ERROR: ("confidentiality", "integrity"),
    Category.SUPPLIER_FAILURE: ("availability",),
    Category.ENVIRONMENT: ("availability", "care_safety"),
}
REASONS = {
    "care_safety": "consequences on patient care safety",
    "confidentiality": "breach of confidentiality of health data",
    "integrity": "alteration of the integrity of health data",
    "availability": "disruption of the normal functioning of the structure",
}
SEVERITY_MIX = {Severity.LOW: 20, Severity.MEDIUM: 45, Severity.HIGH: 27, Severity.CRITICAL: 8}
_OTHER_LABEL = {EstablishmentType.HEALTH_PROFESSIONAL: "Cabinet médical",
                EstablishmentType.OTHER_STRUCTURE: "Centre de santé"}


def quotas(total: int, weights: dict[Category, int]) -> list[Category]:
    """``total`` categories split by ``weights`` with largest remainders (exact totals)."""
    whole = sum(weights.values())
    raw = {k: total * w / whole for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[:total - sum(
            counts.values())]:
        counts[k] += 1
    return [k for k, n in counts.items() for _ in range(n)]


def other_structures(count: int, rng: random.Random, taken: set[str]) -> list[Organization]:
    """Structures that are not health establishments: practices and other health structures.

    They are not in the establishment registry; they get FINESS-shaped ids too, since the
    wire format requires one (the real directory gives them one or an RPPS number).
    """
    regions = list(REGIONS)
    weights = [REGIONS[r][0] for r in regions]
    out = []
    for n in range(count):
        region: Region = rng.choices(regions, weights)[0]
        _, departments, towns = REGIONS[region]
        while True:
            department = rng.choice(departments)
            digits = 9 - len(department)
            finess = f"{department}{rng.randrange(10**digits):0{digits}d}"
            if finess not in taken:
                taken.add(finess)
                break
        kind = (EstablishmentType.HEALTH_PROFESSIONAL if n % 2 == 0
                else EstablishmentType.OTHER_STRUCTURE)
        out.append(Organization(id=finess, name=f"{_OTHER_LABEL[kind]} {rng.choice(towns)} "
                                f"{n + 1:03d}", type=kind, region=region))
    return out


def _reporters(structures: list[Organization], incidents: int,
               rng: random.Random) -> list[Organization]:
    """Every structure declares at least once; a few declare repeatedly (skewed)."""
    extra = incidents - len(structures)
    weights = [rng.paretovariate(1.5) for _ in structures]
    return structures + rng.choices(structures, weights, k=extra)


@dataclass
class DeclarationYear:
    year: int
    seed: int
    incidents: list[Incident] = field(default_factory=list)


def declarations(registry: list[Organization], year: int, seed: int = 0,
                 calibration: Calibration | None = None) -> DeclarationYear:
    """The year's declared incidents, deterministic for (registry, year, seed)."""
    cal = calibration or Calibration()
    rng = random.Random(f"declarations:{year}:{seed}")
    from_health = round(cal.incidents * cal.health_share)
    health_structures = round(cal.structures * cal.health_share)
    other_count = cal.structures - health_structures
    establishments = [o for o in registry if o.type.is_health_establishment]
    if len(establishments) < health_structures:
        raise ValueError(f"the registry has {len(establishments)} establishments, "
                         f"{health_structures} are needed")
    health = rng.sample(establishments, health_structures)
    others = other_structures(other_count, rng, {o.id for o in registry})
    reporters = (_reporters(health, from_health, rng)
                 + _reporters(others, cal.incidents - from_health, rng))
    rng.shuffle(reporters)
    malicious = round(cal.incidents * cal.malicious_share)
    categories = (quotas(malicious, MALICIOUS_MIX)
                  + quotas(cal.incidents - malicious, NON_MALICIOUS_MIX))
    rng.shuffle(categories)
    severities = list(SEVERITY_MIX)
    start = datetime(year, 1, 1, tzinfo=UTC)
    days = (datetime(year + 1, 1, 1, tzinfo=UTC) - start).days
    out = DeclarationYear(year, seed)
    for n, (org, category) in enumerate(zip(reporters, categories, strict=True)):
        first = start + timedelta(days=rng.randrange(days), seconds=rng.randrange(86400))
        last = first + timedelta(hours=rng.randint(1, 96))
        touched = IMPACTS[category]
        chosen = {touched[0]} | {i for i in touched[1:] if rng.random() < 0.35}
        impacts = Impacts(**{name: name in chosen for name in REASONS})
        techniques = rng.sample(TECHNIQUES.get(category, ()),
                                k=min(len(TECHNIQUES.get(category, ())), rng.randint(1, 2)))
        out.incidents.append(Incident(
            id=stable_id("declaration", year, seed, n),
            status=Status.RESOLVED if rng.random() < 0.9 else Status.OPEN,
            severity=rng.choices(severities, list(SEVERITY_MIX.values()))[0],
            category=category,
            origin=origin_of(category),
            title=f"{TITLES[category]} — {org.name}",
            organizations=[org],
            impacts=impacts,
            declarable=True,
            declarable_reasons=[REASONS[name] for name in REASONS if name in chosen],
            techniques=sorted(techniques),
            first_seen=first,
            last_seen=last,
            reported_via=ReportedVia.DECLARATION,
        ))
    return out


@dataclass
class ProduceReport:
    produced: int
    delivery: DeliveryReport
    ids: list[str]


def produce_declarations(kafka: KafkaConnection, incidents: list[Incident]) -> ProduceReport:
    """Produce to ``incidents`` keyed by incident id, and wait for every acknowledgement."""
    ensure_topics(kafka)
    producer = kafka.producer()
    delivery = DeliveryReport()
    for incident in incidents:
        produce_blocking(producer, INCIDENTS.name, incident.id.encode(),
                         incident.to_json_bytes(), delivery.on_delivery)
        producer.poll(0)
    producer.flush(120)
    return ProduceReport(len(incidents), delivery, [i.id for i in incidents])


def summary(incidents: list[Incident]) -> Iterator[tuple[str, object]]:
    """The calibrated figures as generated (what the report should find again)."""
    total = len(incidents)
    yield "incidents", total
    yield "malicious_share", round(100 * sum(i.origin == "malicious" for i in incidents)
                                   / total, 1)
    yield "health_establishment_share", round(100 * sum(
        i.organizations[0].type.is_health_establishment for i in incidents) / total, 1)
    yield "reporting_structures", len({i.organizations[0].id for i in incidents})
