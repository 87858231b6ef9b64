"""What the preview step of the admin UI shows ("Aperçu des changements"): the impact of a change that
``Service.preview`` ran and rolled back, in the reader's words. Users whose access changes the same way
are shown together, by name; functions by their label, in the catalog's order, each unusable one with the
prerequisites it lacks."""

from __future__ import annotations

from dataclasses import dataclass

from .. import impact
from ..catalog import Catalog

MAX_NAMES = 20  # names shown per group of users; the others are counted


@dataclass(frozen=True)
class Unusable:
    label: str
    needs: tuple[str, ...]  # labels of the missing prerequisites


@dataclass(frozen=True)
class Group:
    """Users whose access would change in the same way."""

    names: tuple[str, ...]  # at most MAX_NAMES, by name
    more: int  # users of the group not named
    gains: tuple[str, ...]  # labels
    loses: tuple[str, ...]
    unusable: tuple[Unusable, ...]


@dataclass(frozen=True)
class ImpactView:
    users: int
    gained: int  # functions at least one user gains
    lost: int
    groups: tuple[Group, ...]


def impact_view(catalog: Catalog, found: impact.Impact, lang: str) -> ImpactView:
    order = {code: i for i, code in enumerate(catalog.functions)}

    def labels(codes: tuple[str, ...]) -> tuple[str, ...]:
        ordered = sorted(codes, key=lambda c: (order.get(c, len(order)), c))
        return tuple(catalog.functions[c].label.get(lang) if c in catalog else c for c in ordered)

    Key = tuple[tuple[str, ...], tuple[str, ...], tuple[impact.Unusable, ...]]
    grouped: dict[Key, list[str]] = {}
    for user in found.users:
        grouped.setdefault((user.gains, user.loses, user.unusable), []).append(user.name or user.user)
    groups = []
    for (gains, loses, unusable), names in grouped.items():
        names.sort(key=lambda n: (n.casefold(), n))
        groups.append(Group(
            tuple(names[:MAX_NAMES]), max(0, len(names) - MAX_NAMES), labels(gains), labels(loses),
            tuple(Unusable(labels((u.function,))[0], labels(u.missing_prerequisites))
                  for u in sorted(unusable, key=lambda u: (order.get(u.function, len(order)), u.function))),
        ))
    groups.sort(key=lambda g: (g.names[0].casefold(), g.names[0]))
    return ImpactView(len(found.users), len(found.functions_gained), len(found.functions_lost), tuple(groups))
