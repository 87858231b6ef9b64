"""The function tree of the profile screen and what the profile form does with it.

``build_tree`` turns the catalog into nodes for the templates (blocks with their selected counts,
functions with their checkbox state, what the manual does not show). ``missing_prerequisites`` is the
prerequisite warning: each function that would be denied, what it needs and why, in the reader's
language. ``Draft`` is the form being edited; ``apply`` carries out the buttons that change the
selection without saving ("Sélectionner tout" overall or per block, a predefined profile, adding the
missing prerequisites, a block checkbox ticked or cleared), so that the form works the same with and
without JavaScript.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..catalog import Catalog


@dataclass
class FunctionNode:
    code: str
    label: str
    checked: bool
    covers: list[str]  # labels of the actions this checkbox also grants
    requires: list[str]  # labels of the direct prerequisites
    inactive: bool = False  # granted but denied: a prerequisite is missing (print views)
    requires_why: list[str] = field(default_factory=list)  # the reason of each of ``requires``
    in_manual: bool = True  # False: the manual's profile screens do not show this line
    kind: str = "function"


@dataclass
class GroupNode:
    code: str
    label: str
    children: list[FunctionNode | GroupNode]
    codes: tuple[str, ...]  # selectable functions of the block, sub-blocks included
    selected: int
    in_manual: bool = True  # False: the manual's profile screens do not show this block
    kind: str = "group"

    @property
    def total(self) -> int:
        return len(self.codes)

    @property
    def state(self) -> str:
        if self.selected == 0:
            return "none"
        return "all" if self.selected == self.total else "some"


Node = FunctionNode | GroupNode


def build_tree(
    catalog: Catalog,
    lang: str,
    selected: Iterable[str],
    *,
    prune: bool = False,
    effective: frozenset[str] | None = None,
) -> list[Node]:
    """The display tree with ``selected`` ticked; ``prune`` keeps only what is selected (print views);
    ``effective`` (a user's effective functions) marks granted functions that are denied."""
    chosen = set(selected)

    def walk(items: list[dict[str, Any]]) -> list[Node]:
        nodes: list[Node] = []
        for item in items:
            if item["type"] == "group":
                children = walk(item["children"])
                codes = catalog.group_functions(item["code"])
                count = sum(1 for c in codes if c in chosen)
                if prune and not count:
                    continue
                nodes.append(GroupNode(item["code"], item["label"], children, codes, count,
                                       in_manual=item["in_manual"]))
            elif item["selectable"]:
                if prune and item["code"] not in chosen:
                    continue
                nodes.append(
                    FunctionNode(
                        code=item["code"],
                        label=item["label"],
                        checked=item["code"] in chosen,
                        covers=[catalog.functions[c].label.get(lang) for c in item["covers"]],
                        requires=[catalog.functions[r["code"]].label.get(lang) for r in item["requires"]],
                        inactive=effective is not None and item["code"] in chosen and item["code"] not in effective,
                        requires_why=[r["reason"] for r in item["requires"]],
                        in_manual=item["in_manual"],
                    )
                )
        return nodes

    return walk(catalog.tree(lang))


def prerequisite_map(catalog: Catalog) -> dict[str, list[str]]:
    """Each selectable function -> every function it needs (for the live warning in app.js)."""
    out = {}
    for code in catalog.selectable:
        needed = catalog.missing_prerequisites([code]).get(code)
        if needed:
            out[code] = list(needed)
    return out


def prerequisite_reasons(catalog: Catalog, lang: str) -> dict[str, dict[str, str]]:
    """Each selectable function -> {function it needs: why}, in ``lang`` (the live warning's reasons;
    same keys as :func:`prerequisite_map`)."""
    return {
        code: {pre: catalog.prerequisite_reason(code, pre).get(lang) for pre in needed}
        for code, needed in prerequisite_map(catalog).items()
    }


class Need(NamedTuple):
    """A function that a chosen function needs: its code, its label and why, in the reader's language."""

    code: str
    label: str
    reason: str


@dataclass
class Missing:
    code: str
    label: str
    needs: list[Need]


def missing_prerequisites(catalog: Catalog, lang: str, functions: Iterable[str]) -> list[Missing]:
    """The prerequisite warning: each chosen function that would be denied, with what it lacks and why."""
    known = [c for c in functions if c in catalog and catalog.functions[c].selectable]
    return [
        Missing(code, catalog.functions[code].label.get(lang),
                [Need(p, catalog.functions[p].label.get(lang), catalog.prerequisite_reason(code, p).get(lang))
                 for p in needs])
        for code, needs in catalog.missing_prerequisites(known).items()
    ]


@dataclass
class Draft:
    """The profile form as submitted (or as loaded from the store)."""

    description_fr: str = ""
    description_nl: str = ""
    functions: set[str] = field(default_factory=set)
    includes: set[int] = field(default_factory=set)
    version: int | None = None

    def ordered_functions(self, catalog: Catalog) -> list[str]:
        """Known codes in catalog order, then anything unknown (the use case will refuse it)."""
        known = [c for c in catalog.functions if c in self.functions]
        return known + sorted(self.functions - set(known))


def full_groups(catalog: Catalog, functions: set[str]) -> list[str]:
    """Blocks whose every function is selected: their checkbox is rendered ticked."""
    out = []
    for code in catalog.groups:
        codes = catalog.group_functions(code)
        if codes and all(c in functions for c in codes):
            out.append(code)
    return out


def apply_block_checkboxes(catalog: Catalog, functions: set[str], now: set[str], before: set[str]) -> set[str]:
    """A block checkbox that changed since the page was rendered selects or clears the whole block
    (outer blocks first, so that a change of an inner block wins); unchanged ones leave the
    function checkboxes as they are."""
    result = set(functions)
    for code in catalog.groups:
        if code in now and code not in before:
            result.update(catalog.group_functions(code))
        elif code in before and code not in now:
            result.difference_update(catalog.group_functions(code))
    return result


def apply(catalog: Catalog, draft: Draft, action: str) -> str | None:
    """Carry out a button that changes the selection. Returns an error key for an unknown button."""
    verb, _, arg = action.partition(":")
    if verb == "all":
        draft.functions = set(catalog.selectable)
    elif verb == "none":
        draft.functions = set()
    elif verb in ("select", "deselect"):
        if arg not in catalog.groups:
            return "unknown_group"
        codes = set(catalog.group_functions(arg))
        draft.functions = draft.functions | codes if verb == "select" else draft.functions - codes
    elif verb == "template":
        try:
            draft.functions = set(catalog.template(arg).functions)
        except KeyError:
            return "unknown_template"
    elif verb == "add_prerequisites":
        draft.functions = add_prerequisites(catalog, draft.functions)
    else:
        return "unknown_action"
    return None


def add_prerequisites(catalog: Catalog, functions: set[str]) -> set[str]:
    known = [c for c in functions if c in catalog and catalog.functions[c].selectable]
    result = set(functions)
    for needs in catalog.missing_prerequisites(known).values():
        result.update(needs)
    return result


def templates_data(catalog: Catalog) -> Mapping[str, list[str]]:
    return {t.code: list(t.functions) for t in catalog.templates}
