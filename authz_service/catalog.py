"""The function catalog: what a profile can grant, as data.

This module owns the catalog of functions read from ``policies/catalog.yaml`` (groups and
sub-groups of the profile screen, functions with their French/Dutch/German labels, which checkbox
covers which actions, the prerequisites between functions with their reason in French and Dutch,
and which entries the manual does not show) and the predefined profiles (templates, named per
region) read from ``policies/templates.yaml``. It validates both files completely (any error is a
:class:`CatalogError` naming the file and the entry) and exposes an immutable :class:`Catalog` with
the queries the rest of the service needs: covering, transitive prerequisites and why each is
needed, missing prerequisites of a set of functions, functions of a group, the display tree.

It depends on the standard library and PyYAML only: no Flask, no database.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

import yaml

__all__ = [
    "LANGS",
    "REGIONS",
    "Catalog",
    "CatalogError",
    "Function",
    "Group",
    "Label",
    "Prerequisite",
    "Template",
    "default_policies_dir",
    "load_catalog",
]

REGIONS: tuple[str, ...] = ("wallonia", "brussels", "flanders", "german_community")
LANGS: tuple[str, ...] = ("fr", "nl", "de")

CATALOG_FILE = "catalog.yaml"
TEMPLATES_FILE = "templates.yaml"
POLICIES_DIR_ENV = "AUTHZ_POLICIES_DIR"

_FUNCTION_CODE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_GROUP_CODE = re.compile(r"[a-z][a-z0-9_]*")
_TEMPLATE_CODE = _GROUP_CODE


class CatalogError(ValueError):
    """The catalog or templates data is invalid (the message names the file and the entry)."""


# -- value objects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """A text in French and Dutch (both required) and optionally German."""

    fr: str
    nl: str
    de: str | None = None

    def get(self, lang: str) -> str:
        """The text in ``lang`` (fr, nl or de), falling back to French, then Dutch."""
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
        value: str | None = getattr(self, lang)
        return value or self.fr or self.nl


@dataclass(frozen=True)
class Prerequisite:
    """A function that must also be granted, and why (in French and Dutch, optionally German)."""

    code: str
    reason: Label


@dataclass(frozen=True)
class Group:
    """A block (or sub-block) of functions on the profile screen."""

    code: str
    parent: str | None
    order: int
    label: Label
    implied: bool
    note: str | None
    in_manual: bool = True  # False: the manual's profile screens do not show this block at all


@dataclass(frozen=True)
class Function:
    """A function: a checkbox (``selectable``) or an action covered by one."""

    code: str
    group: str | None
    order: int
    label: Label
    selectable: bool
    covers: tuple[str, ...]
    requires: tuple[Prerequisite, ...]
    in_manual: bool = True  # False: the manual's profile screens do not show this line


@dataclass(frozen=True)
class Template:
    """A predefined profile: a starting set of functions, named per region."""

    code: str
    order: int
    names: Mapping[str, Label] = field(hash=False)
    functions: tuple[str, ...]

    def name(self, region: str) -> Label:
        """The template's name in ``region`` (one of :data:`REGIONS`)."""
        try:
            return self.names[region]
        except KeyError:
            raise ValueError(f"unknown region {region!r}: expected one of {', '.join(REGIONS)}") from None


# -- the catalog --------------------------------------------------------------------------------


class Catalog:
    """The validated, immutable catalog. Build it with :func:`load_catalog`.

    Constructing it directly validates everything too (unknown references, cycles, covering rules,
    templates' prerequisites) and raises :class:`CatalogError`.
    """

    __slots__ = (
        "_children",
        "_coverers",
        "_index",
        "_prerequisites",
        "_templates",
        "digest",
        "functions",
        "groups",
        "selectable",
        "templates",
        "version",
    )

    version: str
    digest: str
    groups: Mapping[str, Group]
    functions: Mapping[str, Function]
    templates: tuple[Template, ...]
    selectable: tuple[str, ...]
    _children: Mapping[str | None, tuple[Group | Function, ...]]
    _coverers: Mapping[str, tuple[str, ...]]
    _index: Mapping[str, int]
    _prerequisites: Mapping[str, frozenset[str]]
    _templates: Mapping[str, Template]

    def __init__(
        self,
        *,
        version: str,
        groups: Iterable[Group],
        functions: Iterable[Function],
        templates: Iterable[Template] = (),
        digest: str = "",
        catalog_source: str = CATALOG_FILE,
        templates_source: str = TEMPLATES_FILE,
    ) -> None:
        src = catalog_source
        if not isinstance(version, str) or not version.strip():
            _fail(f"{src}: 'version' must be a non-empty string")
        group_list = list(groups)
        function_list = list(functions)

        # groups: codes, labels, parents, cycles
        by_group: dict[str, Group] = {}
        for g in group_list:
            where = f"{src}: group {g.code!r}"
            if not isinstance(g.code, str) or not _GROUP_CODE.fullmatch(g.code):
                _fail(f"{where}: code must match ^[a-z][a-z0-9_]*$")
            if g.code in by_group:
                _fail(f"{where}: duplicate group code")
            _check_order(g.order, where)
            _check_label(g.label, where)
            if g.implied and not g.in_manual:
                _fail(
                    f"{where}: 'implied' (the manual shows the block collapsed) contradicts "
                    "'in_manual: false' (the manual does not show it)"
                )
            by_group[g.code] = g
        for g in group_list:
            if g.parent is not None and g.parent not in by_group:
                _fail(f"{src}: group {g.code!r}: unknown parent group {g.parent!r}")
        for g in group_list:
            seen = [g.code]
            parent = g.parent
            while parent is not None:
                if parent in seen:
                    cycle = " -> ".join([*seen[seen.index(parent) :], parent])
                    _fail(f"{src}: group {g.code!r}: parent cycle {cycle}")
                seen.append(parent)
                parent = by_group[parent].parent

        # functions: codes, labels, groups
        by_code: dict[str, Function] = {}
        for f in function_list:
            where = f"{src}: function {f.code!r}"
            if not isinstance(f.code, str) or not _FUNCTION_CODE.fullmatch(f.code):
                _fail(f"{where}: code must match ^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)*$")
            if f.code in by_code:
                _fail(f"{where}: duplicate function code")
            _check_order(f.order, where)
            _check_label(f.label, where)
            if f.group is not None and f.group not in by_group:
                _fail(f"{where}: unknown group {f.group!r}")
            by_code[f.code] = f

        # covering: only non-selectable actions, each covered by at least one selectable function
        coverers: dict[str, list[str]] = {code: [] for code in by_code}
        for f in function_list:
            where = f"{src}: function {f.code!r}"
            if f.covers and not f.selectable:
                _fail(f"{where}: only a selectable function can cover actions")
            if len(set(f.covers)) != len(f.covers):
                _fail(f"{where}: 'covers' lists an action twice")
            for covered in f.covers:
                target = by_code.get(covered)
                if target is None:
                    _fail(f"{where}: covers unknown function {covered!r}")
                if covered == f.code:
                    _fail(f"{where}: covers itself")
                if target.selectable:
                    _fail(
                        f"{where}: covers {covered!r}, which is selectable (has its own checkbox); "
                        "only actions with 'selectable: false' can be covered"
                    )
                coverers[covered].append(f.code)
        for f in function_list:
            if not f.selectable and not coverers[f.code]:
                _fail(
                    f"{src}: function {f.code!r} is not selectable and no selectable function covers it "
                    "(it could never be granted)"
                )

        # prerequisites: known, selectable, not self, no duplicates, no cycles
        for f in function_list:
            where = f"{src}: function {f.code!r}"
            seen_pre: set[str] = set()
            for pre in f.requires:
                if not isinstance(pre.reason, Label):
                    _fail(f"{where}: prerequisite {pre.code!r} needs a reason in French and Dutch (a Label)")
                _check_label(pre.reason, f"{where}: prerequisite {pre.code!r}", "reason")
                if pre.code == f.code:
                    _fail(f"{where}: requires itself")
                target = by_code.get(pre.code)
                if target is None:
                    _fail(f"{where}: requires unknown function {pre.code!r}")
                if not target.selectable:
                    _fail(
                        f"{where}: requires {pre.code!r}, which is not selectable; a prerequisite must "
                        "be a function with its own checkbox"
                    )
                if pre.code in seen_pre:
                    _fail(f"{where}: requires {pre.code!r} twice")
                seen_pre.add(pre.code)
        closure = _prerequisite_closure(by_code, src)

        # display order: depth-first, functions and sub-groups of a parent merged by order
        children: dict[str | None, list[Group | Function]] = {None: []}
        for g in group_list:
            children.setdefault(g.code, [])
        for g in group_list:
            children[g.parent].append(g)
        for f in function_list:
            children[f.group].append(f)
        frozen_children = {key: tuple(sorted(items, key=_sort_key)) for key, items in children.items()}
        ordered_groups: dict[str, Group] = {}
        ordered_functions: dict[str, Function] = {}

        def walk(parent: str | None) -> None:
            for item in frozen_children[parent]:
                if isinstance(item, Group):
                    ordered_groups[item.code] = item
                    walk(item.code)
                else:
                    ordered_functions[item.code] = item

        walk(None)
        index = {code: i for i, code in enumerate(ordered_functions)}

        self._set("version", version)
        self._set("digest", digest)
        self._set("groups", MappingProxyType(ordered_groups))
        self._set("functions", MappingProxyType(ordered_functions))
        self._set("selectable", tuple(c for c, f in ordered_functions.items() if f.selectable))
        self._set("_children", MappingProxyType(frozen_children))
        self._set("_index", MappingProxyType(index))
        self._set(
            "_coverers",
            MappingProxyType({c: tuple(sorted(v, key=index.__getitem__)) for c, v in coverers.items()}),
        )
        self._set("_prerequisites", MappingProxyType(closure))

        # templates: validated against the finished catalog
        tsrc = templates_source
        template_list = sorted(templates, key=lambda t: (t.order, t.code))
        by_template: dict[str, Template] = {}
        for t in template_list:
            where = f"{tsrc}: template {t.code!r}"
            if not isinstance(t.code, str) or not _TEMPLATE_CODE.fullmatch(t.code):
                _fail(f"{where}: code must match ^[a-z][a-z0-9_]*$")
            if t.code in by_template:
                _fail(f"{where}: duplicate template code")
            _check_order(t.order, where)
            missing_regions = [r for r in REGIONS if r not in t.names]
            if missing_regions:
                _fail(f"{where}: no name for region(s) {', '.join(missing_regions)}")
            extra_regions = sorted(set(t.names) - set(REGIONS))
            if extra_regions:
                _fail(f"{where}: unknown region(s) {', '.join(extra_regions)}")
            for region in REGIONS:
                _check_label(t.names[region], f"{where}: name for {region}")
            if len(set(t.functions)) != len(t.functions):
                _fail(f"{where}: a function is listed twice")
            for code in t.functions:
                fn = ordered_functions.get(code)
                if fn is None:
                    _fail(f"{where}: unknown function {code!r}")
                if not fn.selectable:
                    _fail(
                        f"{where}: {code!r} is not selectable (covered by {', '.join(self.coverers(code))}); "
                        "list the covering function instead"
                    )
            missing = self.missing_prerequisites(t.functions)
            if missing:
                detail = "; ".join(f"{code} needs {', '.join(pre)}" for code, pre in missing.items())
                _fail(f"{where}: missing prerequisites: {detail}")
            by_template[t.code] = t
        self._set("templates", tuple(template_list))
        self._set("_templates", MappingProxyType(by_template))

    # -- immutability ---------------------------------------------------------------------------
    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Catalog is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Catalog is immutable (cannot delete {name!r})")

    def __repr__(self) -> str:
        return (
            f"<Catalog version={self.version!r} groups={len(self.groups)} functions={len(self.functions)} "
            f"selectable={len(self.selectable)} templates={len(self.templates)} digest={self.digest[:12]!r}>"
        )

    # -- queries --------------------------------------------------------------------------------
    def __contains__(self, code: object) -> bool:
        """Whether ``code`` is a function code (selectable or covered)."""
        return isinstance(code, str) and code in self.functions

    def _function(self, code: str) -> Function:
        try:
            return self.functions[code]
        except KeyError:
            raise KeyError(f"unknown function {code!r}") from None

    def coverers(self, code: str) -> tuple[str, ...]:
        """The selectable functions whose checkbox also grants ``code`` (empty for a selectable one)."""
        self._function(code)
        return self._coverers[code]

    def prerequisites(self, code: str) -> frozenset[str]:
        """Every function ``code`` needs, transitively (``code`` itself excluded)."""
        self._function(code)
        return self._prerequisites[code]

    def prerequisite_reason(self, code: str, prerequisite: str) -> Label:
        """Why ``code`` needs ``prerequisite``: the reason of the link that brings it in, the direct
        one when there is one (of ``code`` or of an action it covers), else the nearest link on a chain
        of prerequisites. Raises :class:`KeyError` when ``code`` does not need ``prerequisite``."""
        fn = self._function(code)
        frontier = [fn, *(self.functions[c] for c in fn.covers)]
        seen = {f.code for f in frontier}
        while frontier:
            for f in frontier:
                for pre in f.requires:
                    if pre.code == prerequisite:
                        return pre.reason
            following = []
            for f in frontier:
                for pre in f.requires:
                    if pre.code not in seen:
                        seen.add(pre.code)
                        following.append(self.functions[pre.code])
            frontier = following
        raise KeyError(f"{code!r} does not need {prerequisite!r}")

    def group_functions(self, group: str, *, recursive: bool = True) -> tuple[str, ...]:
        """The selectable functions of ``group`` in display order ("Sélectionner tout"); with
        ``recursive`` also those of its sub-groups."""
        if group not in self.groups:
            raise KeyError(f"unknown group {group!r}")
        out: list[str] = []

        def walk(parent: str) -> None:
            for item in self._children[parent]:
                if isinstance(item, Function):
                    if item.selectable:
                        out.append(item.code)
                elif recursive:
                    walk(item.code)

        walk(group)
        return tuple(out)

    def missing_prerequisites(self, codes: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """For a set of granted functions: each granted code whose prerequisites (its own and those of
        the actions it covers, transitively) are not all granted -> the sorted missing codes.

        Codes without anything missing are left out; keys follow display order.
        """
        if isinstance(codes, str):
            raise TypeError("codes must be an iterable of function codes, not a string")
        granted = set(codes)
        for code in granted:
            self._function(code)
        held = set(granted)
        for code in granted:
            held.update(self.functions[code].covers)
        out: dict[str, tuple[str, ...]] = {}
        for code in sorted(granted, key=self._index.__getitem__):
            needed = set(self._prerequisites[code])
            for covered in self.functions[code].covers:
                needed |= self._prerequisites[covered]
            missing = needed - held
            if missing:
                out[code] = tuple(sorted(missing))
        return out

    def tree(self, lang: str) -> list[dict[str, Any]]:
        """The display tree as JSON-ready dicts: groups with their ``children`` and functions, in
        order, top-level functions at the root; labels and prerequisites' reasons in ``lang``;
        ``in_manual`` false for what the manual's profile screens do not show."""
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")

        def build(parent: str | None) -> list[dict[str, Any]]:
            nodes: list[dict[str, Any]] = []
            for item in self._children[parent]:
                if isinstance(item, Group):
                    nodes.append(
                        {
                            "type": "group",
                            "code": item.code,
                            "label": item.label.get(lang),
                            "implied": item.implied,
                            "in_manual": item.in_manual,
                            "children": build(item.code),
                        }
                    )
                else:
                    nodes.append(
                        {
                            "type": "function",
                            "code": item.code,
                            "label": item.label.get(lang),
                            "selectable": item.selectable,
                            "covers": list(item.covers),
                            "requires": [{"code": p.code, "reason": p.reason.get(lang)} for p in item.requires],
                            "in_manual": item.in_manual,
                        }
                    )
            return nodes

        return build(None)

    def template(self, code: str) -> Template:
        """The template (predefined profile) ``code``."""
        try:
            return self._templates[code]
        except KeyError:
            raise KeyError(f"unknown template {code!r}") from None


# -- loading ------------------------------------------------------------------------------------


def default_policies_dir() -> pathlib.Path:
    """``$AUTHZ_POLICIES_DIR`` if set, else the ``policies`` folder beside the package."""
    env = os.environ.get(POLICIES_DIR_ENV)
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parent.parent / "policies"


def load_catalog(directory: str | os.PathLike[str]) -> Catalog:
    """Read, validate and return the catalog of ``directory`` (``catalog.yaml`` and
    ``templates.yaml``). Raises :class:`CatalogError` on any problem."""
    base = pathlib.Path(directory)
    catalog_path = base / CATALOG_FILE
    templates_path = base / TEMPLATES_FILE
    catalog_bytes = _read(catalog_path)
    templates_bytes = _read(templates_path)
    csrc, tsrc = str(catalog_path), str(templates_path)
    catalog_doc = _parse_yaml(catalog_bytes, csrc)
    templates_doc = _parse_yaml(templates_bytes, tsrc)

    top = _mapping(catalog_doc, csrc)
    _keys(top, csrc, required=("version", "groups", "functions"), optional=())
    version = top["version"]
    if not isinstance(version, str) or not version.strip():
        _fail(f"{csrc}: 'version' must be a non-empty quoted string (e.g. \"2026.1\")")
    groups = [_parse_group(item, csrc, i) for i, item in enumerate(_list(top["groups"], f"{csrc}: groups"))]
    functions = [_parse_function(item, csrc, i) for i, item in enumerate(_list(top["functions"], f"{csrc}: functions"))]

    ttop = _mapping(templates_doc, tsrc)
    _keys(ttop, tsrc, required=("templates",), optional=())
    templates = [
        _parse_template(item, tsrc, i) for i, item in enumerate(_list(ttop["templates"], f"{tsrc}: templates"))
    ]

    digest = hashlib.sha256(catalog_bytes + templates_bytes).hexdigest()
    return Catalog(
        version=version,
        groups=groups,
        functions=functions,
        templates=templates,
        digest=digest,
        catalog_source=csrc,
        templates_source=tsrc,
    )


# -- parsing helpers ----------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    raise CatalogError(message)


# libyaml's SafeLoader when PyYAML was built with it (its wheels are): the same documents, parsed in C, several
# times faster than the pure-Python one (every process, init-db and test parses the catalog)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror or exc}")


def _parse_yaml(raw: bytes, src: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"{src}: not UTF-8: {exc}")
    try:
        return yaml.load(text, Loader=SAFE_LOADER)  # a safe loader
    except yaml.YAMLError as exc:
        _fail(f"{src}: invalid YAML: {exc}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(f"{where}: expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            _fail(f"{where}: key {key!r} is not a string")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        _fail(f"{where}: expected a list, got {_kind(value)}")
    return value


def _keys(value: Mapping[str, Any], where: str, *, required: Sequence[str], optional: Sequence[str]) -> None:
    missing = [k for k in required if k not in value]
    if missing:
        _fail(f"{where}: missing {', '.join(repr(k) for k in missing)}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        _fail(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _code(value: Mapping[str, Any], where: str) -> str:
    code = value.get("code")
    if not isinstance(code, str) or not code:
        _fail(f"{where}: 'code' must be a non-empty string")
    return code


def _text(value: Any, where: str, name: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail(f"{where}: {name!r} must be a non-empty string" + (" or null" if optional else ""))
    return value


def _check_order(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{where}: 'order' must be an integer, got {value!r}")


def _check_label(label: Any, where: str, what: str = "label") -> None:
    if not isinstance(label, Label):
        _fail(f"{where}: {what} must be a Label")
    for lang in ("fr", "nl"):
        text = getattr(label, lang)
        if not isinstance(text, str) or not text.strip():
            _fail(f"{where}: {what} has no {lang!r} text")
    if label.de is not None and (not isinstance(label.de, str) or not label.de.strip()):
        _fail(f"{where}: {what}'s 'de' text must be non-empty or null")


def _flag(mapping: Mapping[str, Any], where: str, name: str, *, default: bool) -> bool:
    value = mapping.get(name, default)
    if not isinstance(value, bool):
        _fail(f"{where}: {name!r} must be true or false")
    return value


def _parse_label(value: Any, where: str) -> Label:
    return _parse_text(value, f"{where}: label")


def _parse_text(value: Any, where: str) -> Label:
    """A text in French and Dutch (both required, non-empty) and optionally German."""
    mapping = _mapping(value, where)
    unknown = sorted(set(mapping) - set(LANGS))
    if unknown:
        _fail(f"{where}: unknown language(s) {', '.join(repr(k) for k in unknown)}")
    for lang in ("fr", "nl"):
        text = mapping.get(lang)
        if not isinstance(text, str) or not text.strip():
            _fail(f"{where}: missing or empty {lang!r} text")
    de = mapping.get("de")
    if de is not None and (not isinstance(de, str) or not de.strip()):
        _fail(f"{where}: 'de' must be a non-empty string or null")
    return Label(fr=mapping["fr"].strip(), nl=mapping["nl"].strip(), de=de.strip() if de else None)


def _parse_group(value: Any, src: str, index: int) -> Group:
    mapping = _mapping(value, f"{src}: groups[{index}]")
    code = _code(mapping, f"{src}: groups[{index}]")
    where = f"{src}: group {code!r}"
    _keys(mapping, where, required=("code", "order", "label"), optional=("parent", "implied", "note", "in_manual"))
    parent = mapping.get("parent")
    if parent is not None and (not isinstance(parent, str) or not parent):
        _fail(f"{where}: 'parent' must be a group code or null")
    implied = mapping.get("implied", False)
    if not isinstance(implied, bool):
        _fail(f"{where}: 'implied' must be true or false")
    in_manual = _flag(mapping, where, "in_manual", default=True)
    _check_order(mapping["order"], where)
    return Group(
        code=code,
        parent=parent,
        order=mapping["order"],
        label=_parse_label(mapping["label"], where),
        implied=implied,
        note=_text(mapping.get("note"), where, "note", optional=True),
        in_manual=in_manual,
    )


def _parse_function(value: Any, src: str, index: int) -> Function:
    mapping = _mapping(value, f"{src}: functions[{index}]")
    code = _code(mapping, f"{src}: functions[{index}]")
    where = f"{src}: function {code!r}"
    _keys(
        mapping,
        where,
        required=("code", "group", "order", "label"),
        optional=("selectable", "covers", "requires", "in_manual"),
    )
    group = mapping["group"]
    if group is not None and (not isinstance(group, str) or not group):
        _fail(f"{where}: 'group' must be a group code or null")
    selectable = mapping.get("selectable", True)
    if not isinstance(selectable, bool):
        _fail(f"{where}: 'selectable' must be true or false")
    covers_raw = mapping.get("covers") or []
    covers: list[str] = []
    for item in _list(covers_raw, f"{where}: covers"):
        if not isinstance(item, str) or not item:
            _fail(f"{where}: 'covers' must list function codes, got {item!r}")
        covers.append(item)
    requires: list[Prerequisite] = []
    for i, item in enumerate(_list(mapping.get("requires") or [], f"{where}: requires")):
        pwhere = f"{where}: requires[{i}]"
        pre = _mapping(item, pwhere)
        _keys(pre, pwhere, required=("code", "reason"), optional=())
        pcode = pre["code"]
        if not isinstance(pcode, str) or not pcode:
            _fail(f"{pwhere}: 'code' must be a function code")
        rwhere = f"{where}: prerequisite {pcode!r}: reason"
        if not isinstance(pre["reason"], Mapping):
            _fail(f"{rwhere}: must be texts {{fr: ..., nl: ...}} (German optional), got {_kind(pre['reason'])}")
        requires.append(Prerequisite(code=pcode, reason=_parse_text(pre["reason"], rwhere)))
    in_manual = _flag(mapping, where, "in_manual", default=True)
    _check_order(mapping["order"], where)
    return Function(
        code=code,
        group=group,
        order=mapping["order"],
        label=_parse_label(mapping["label"], where),
        selectable=selectable,
        covers=tuple(covers),
        requires=tuple(requires),
        in_manual=in_manual,
    )


def _parse_template(value: Any, src: str, index: int) -> Template:
    mapping = _mapping(value, f"{src}: templates[{index}]")
    code = _code(mapping, f"{src}: templates[{index}]")
    where = f"{src}: template {code!r}"
    _keys(mapping, where, required=("code", "order", "names", "functions"), optional=())
    _check_order(mapping["order"], where)
    names_map = _mapping(mapping["names"], f"{where}: names")
    missing = [r for r in REGIONS if r not in names_map]
    if missing:
        _fail(f"{where}: no name for region(s) {', '.join(missing)}")
    unknown = sorted(set(names_map) - set(REGIONS))
    if unknown:
        _fail(f"{where}: unknown region(s) {', '.join(unknown)}")
    names = {region: _parse_label(names_map[region], f"{where}: name for {region}") for region in REGIONS}
    functions: list[str] = []
    for item in _list(mapping["functions"], f"{where}: functions"):
        if not isinstance(item, str) or not item:
            _fail(f"{where}: 'functions' must list function codes, got {item!r}")
        functions.append(item)
    return Template(code=code, order=mapping["order"], names=MappingProxyType(names), functions=tuple(functions))


def _sort_key(item: Group | Function) -> tuple[int, int, str]:
    # functions before sub-groups at equal order, then by code: a stable, total display order
    return (item.order, 0 if isinstance(item, Function) else 1, item.code)


def _prerequisite_closure(functions: Mapping[str, Function], src: str) -> dict[str, frozenset[str]]:
    """Transitive prerequisites of every function; a cycle is a :class:`CatalogError`."""
    closure: dict[str, frozenset[str]] = {}
    visiting: list[str] = []

    def visit(code: str) -> frozenset[str]:
        done = closure.get(code)
        if done is not None:
            return done
        if code in visiting:
            cycle = " -> ".join([*visiting[visiting.index(code) :], code])
            _fail(f"{src}: function {code!r}: prerequisite cycle {cycle}")
        visiting.append(code)
        acc: set[str] = set()
        for pre in functions[code].requires:
            acc.add(pre.code)
            acc |= visit(pre.code)
        visiting.pop()
        result = frozenset(acc - {code})
        closure[code] = result
        return result

    for code in functions:
        visit(code)
    return closure
