"""What a change would do to the users of a CPAS: the difference between two policies of the CPAS (before
and after a change that ``Service.preview`` ran and rolled back), user by user.

A user is listed only when their effective functions change, effective meaning exactly what the engine
(and so ``POST /enforce``) allows: profile inclusion, covered actions, prerequisites, an inactive user
denied everything. For each listed user: the functions gained and lost, and the functions they would hold
through a profile after the change but be denied for a missing prerequisite ("unusable"), with what each
lacks. Pure: policies and names in, frozen data out; no Flask, no SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .engine import CpasPolicy


@dataclass(frozen=True)
class Unusable:
    function: str
    missing_prerequisites: tuple[str, ...]  # sorted

    def as_json(self) -> dict[str, Any]:
        return {"function": self.function, "missing_prerequisites": list(self.missing_prerequisites)}


@dataclass(frozen=True)
class UserImpact:
    user: str
    name: str
    gains: tuple[str, ...]  # sorted codes
    loses: tuple[str, ...]
    unusable: tuple[Unusable, ...]  # by code

    def as_json(self) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "gains": list(self.gains), "loses": list(self.loses),
                "unusable": [u.as_json() for u in self.unusable]}


@dataclass(frozen=True)
class Impact:
    users: tuple[UserImpact, ...]  # sorted by user id

    @property
    def functions_gained(self) -> frozenset[str]:
        """The functions at least one user gains."""
        return frozenset(code for u in self.users for code in u.gains)

    @property
    def functions_lost(self) -> frozenset[str]:
        return frozenset(code for u in self.users for code in u.loses)

    def as_json(self) -> dict[str, Any]:
        return {
            "users": [u.as_json() for u in self.users],
            "summary": {"users_affected": len(self.users), "functions_gained": len(self.functions_gained),
                        "functions_lost": len(self.functions_lost)},
        }


NOTHING: frozenset[str] = frozenset()


def compare(before: CpasPolicy | None, after: CpasPolicy | None, names: Mapping[str, str]) -> Impact:
    """The impact of going from ``before`` to ``after`` (None: the CPAS does not exist) on the users of
    ``names`` (user id -> name: the CPAS's users)."""
    unusable = _Unusable(after)
    found = []
    for user in sorted(names):
        old = before.functions_of(user) if before is not None else NOTHING
        new = after.functions_of(user) if after is not None else NOTHING
        if old is new or old == new:  # users with the same profiles share one set: most often the same object
            continue
        found.append(UserImpact(user, names[user], tuple(sorted(new - old)), tuple(sorted(old - new)),
                                unusable.of(user)))
    return Impact(tuple(found))


class _Unusable:
    """The functions a user holds through a profile in ``policy`` but is denied for a missing prerequisite,
    computed once per set of directly held profiles (users holding the same profiles share the answer)."""

    def __init__(self, policy: CpasPolicy | None) -> None:
        self.policy = policy
        self._by_profiles: dict[tuple[int, ...], tuple[Unusable, ...]] = {}

    def of(self, user: str) -> tuple[Unusable, ...]:
        policy = self.policy
        if policy is None:
            return ()
        view = policy.view(user)
        if not view.active or not view.profiles:
            return ()  # inactive: denied everything, not for a prerequisite; no profile: holds nothing
        found = self._by_profiles.get(view.profiles)
        if found is None:
            out = []
            # only a function with prerequisites can be denied for one; the explanation says whether a role
            # granting it is held and which prerequisites are not
            for function in sorted(policy.rules.deny_roles):
                if function in view.functions:
                    continue
                decision = policy.decide(user, function, explain=True)
                if decision.reason == "missing_prerequisite":
                    out.append(Unusable(function, decision.missing_prerequisites))
            found = self._by_profiles[view.profiles] = tuple(out)
        return found
