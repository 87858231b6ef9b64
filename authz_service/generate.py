"""A realistic, deterministic national dataset for benchmarks and scale tests.

580 CPAS (their regions in Belgium's proportions), 5-30 profiles each with 20-150 functions of the real
catalog (mostly with their prerequisites, some without), some profiles including another one, 20,000
users (a few large cities with 1,000+), 1-3 profiles each, some inactive. Written in bulk through the
same tables and rule rows as the use cases (one transaction per CPAS, one audit row per CPAS); the
same seed always gives the same data.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .admin import Admin, description_key
from .catalog import Catalog
from .db import Database
from .engine import function_role, profile_role, user_subject
from .models import Profile
from .store import Store

SCALES = {"national": 580}
NATIONAL_USERS = 20_000
CITIES = 5  # the first CPAS are large cities with 1,000+ users each
REGION_SHARE = (("flanders", 300), ("wallonia", 252), ("brussels", 19), ("german_community", 9))


def kbo(number: int) -> str:
    """A valid KBO/BCE number from an 8-digit head (first digit 0)."""
    head = f"0{number:07d}"
    return head + f"{97 - int(head) % 97:02d}"


@dataclass(frozen=True)
class Plan:
    cpas: int
    users: int
    seed: int


def plan(scale: str | None, cpas: int | None, seed: int, users: int | None = None) -> Plan:
    count = cpas if cpas is not None else SCALES[scale or "national"]
    if count < 1 or count > 5000:
        raise ValueError("--cpas must be between 1 and 5000")
    total = users if users is not None else round(NATIONAL_USERS * count / SCALES["national"])
    return Plan(cpas=count, users=max(total, count), seed=seed)


def _user_counts(rng: random.Random, p: Plan) -> list[int]:
    cities = min(CITIES, p.cpas) if p.users >= 1000 * CITIES * 2 else 0
    counts = [rng.randint(1000, 1500) for _ in range(cities)]
    rest = p.users - sum(counts)
    others = p.cpas - cities
    if others:
        weights = [rng.paretovariate(1.6) for _ in range(others)]
        scale = rest / sum(weights)
        counts += [max(1, round(w * scale)) for w in weights]
    return counts


def _regions(count: int) -> list[str]:
    total = sum(n for _, n in REGION_SHARE)
    regions: list[str] = []
    for name, share in REGION_SHARE:
        regions += [name] * round(count * share / total)
    regions += ["flanders"] * (count - len(regions))
    return regions[:count]


def _profile_functions(rng: random.Random, catalog: Catalog) -> list[str]:
    chosen = set(rng.sample(catalog.selectable, k=min(len(catalog.selectable), rng.randint(20, 150))))
    if rng.random() < 0.9:  # most managers add the prerequisites; some forget
        for code in list(chosen):
            chosen |= catalog.prerequisites(code)
    return sorted(chosen)


def generate(
    database: Database,
    catalog: Catalog,
    p: Plan,
    *,
    actor: str = "cli:generate",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    rng = random.Random(p.seed)
    counts = _user_counts(rng, p)
    regions = _regions(p.cpas)
    rng.shuffle(regions)
    totals = {"cpas": 0, "profiles": 0, "users": 0, "rules": 0}
    for index in range(p.cpas):
        cpas = kbo(3_000_000 + p.seed % 1000 * 5000 + index)
        with database.transaction() as session:
            store = Store(session)
            if store.get_cpas(cpas) is not None:
                continue
            admin = Admin(store, catalog, actor)
            admin.create_cpas(cpas, f"CPAS de Commune {index:03d}", f"OCMW Gemeente {index:03d}", regions[index])
            builtin = store.builtin_profile(cpas)
            assert builtin is not None
            profiles = [
                Profile(cpas_id=cpas, description_fr=f"Profil {i:02d}", description_nl=f"Profiel {i:02d}",
                        key_fr=description_key(f"Profil {i:02d}"), key_nl=description_key(f"Profiel {i:02d}"),
                        builtin=False, version=1)
                for i in range(rng.randint(5, 30))
            ]
            store.add_profiles(profiles)
            rows: list[tuple[str, str]] = []
            for i, profile in enumerate(profiles):
                for code in _profile_functions(rng, catalog):
                    rows.append((profile_role(profile.id), function_role(code)))
                if i >= 2 and rng.random() < 0.15:  # "travailleur administratif + clignotants"
                    rows.append((profile_role(profile.id), profile_role(profiles[rng.randrange(i)].id)))
            ids = [pr.id for pr in profiles] + [builtin.id]
            weights = [1.0] * len(profiles) + [0.3]
            users: list[dict[str, Any]] = []
            for u in range(counts[index]):
                user = f"{index:03d}{u:08d}"
                active = rng.random() > 0.03
                users.append({"cpas_id": cpas, "user": user, "name": f"Agent {index:03d}-{u:05d}", "lang":
                              "nl" if regions[index] == "flanders" else "fr", "active": active})
                if active:
                    k = rng.choice((1, 1, 1, 2, 2, 3))
                    for pid in set(rng.choices(ids, weights=weights, k=k)):
                        rows.append((user_subject(user), profile_role(pid)))
            store.bulk_insert(cpas, users, rows)
            store.bump_version(cpas)
            store.audit(cpas, actor, "cpas.generate", f"cpas:{cpas}", None,
                        {"profiles": len(profiles), "users": len(users), "seed": p.seed})
        totals["cpas"] += 1
        totals["profiles"] += len(profiles) + 1
        totals["users"] += len(users)
        totals["rules"] += len(rows) + len(catalog.selectable)
        if progress:
            progress(index + 1, p.cpas)
    return totals

