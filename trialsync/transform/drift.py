"""Drift between the records the API sends and its own data model (``/studies/metadata``). Pure: no I/O.

The data model is a tree of nodes (``name``, ``children``); a field's path is the dotted names from the
root (``protocolSection.identificationModule.nctId``), and the items of a list are children of the list's
node (no index in the path), as AACT (aact-v2) flattens the same tree. A node without children is a leaf:
the model describes nothing below it, so whatever a record holds there (``geoPoint``'s ``lat`` and ``lon``)
is the leaf's own value, not drift. Only the topmost unknown path is reported: a record carrying a new
object reports the object, not each key inside it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..statuses import STATUS_LABELS

# The fields of protocolSection.statusModule that hold one of the 14 known statuses.
STATUS_FIELDS = ("overallStatus", "lastKnownStatus")

# The kinds of drift: a field records carry that the data model lacks, a field a newer data model no longer
# has, a status outside the 14 known.
UNKNOWN_FIELD, VANISHED_FIELD, UNKNOWN_STATUS = "unknown field", "vanished field", "unknown status"


# The shapes remembered for one object of the model: API records have a few dozen; an odd record whose keys
# vary from record to record would otherwise grow the memory for ever.
MAX_SHAPES = 4096


class NotADataModel(ValueError):
    """What ``/studies/metadata`` answered is not a tree of named fields."""


def model_paths(nodes: object) -> dict[str, bool]:
    """Each dotted path of a ``/studies/metadata`` tree, mapped to whether it is a leaf, parents before their
    children. Raises NotADataModel unless ``nodes`` is a non-empty list of objects, each with a non-empty
    string ``name`` and, if any, a list of ``children`` of the same kind."""
    paths: dict[str, bool] = {}
    _flatten(nodes, "", paths)
    if not paths:
        raise NotADataModel("the API's data model holds no field")
    return paths


def _flatten(nodes: object, prefix: str, paths: dict[str, bool]) -> None:
    where = f" (under {prefix[:-1]})" if prefix else ""
    if not isinstance(nodes, list):
        raise NotADataModel(f"the API's data model has {type(nodes).__name__} where a list of fields belongs{where}")
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("name"), str) or not node["name"]:
            raise NotADataModel(f"the API's data model has a field without a name{where}")
        path = prefix + node["name"]
        children = node.get("children")
        paths[path] = not children
        if children:
            _flatten(children, path + ".", paths)


def vanished_paths(before: Mapping[str, bool], after: Mapping[str, bool]) -> list[str]:
    """The topmost paths of the model ``before`` that the model ``after`` no longer has, in ``before``'s order."""
    gone = [path for path in before if path not in after]
    gone_set = set(gone)
    return [path for path in gone if path.rpartition(".")[0] not in gone_set]


def unknown_statuses(record: Mapping) -> list[str]:
    """The values of the record's status fields (``STATUS_FIELDS``) that are not one of the 14 known."""
    section = record.get("protocolSection")
    module = section.get("statusModule") if isinstance(section, dict) else None
    if not isinstance(module, dict):
        return []
    values = (module.get(name) for name in STATUS_FIELDS)
    return list(dict.fromkeys(v for v in values if isinstance(v, str) and v not in STATUS_LABELS))


def drift_of(record: Mapping, model: "DataModel | None") -> list[tuple[str, str]]:
    """(kind, value) of each drift ``record`` shows: the topmost paths it carries that ``model`` lacks (none
    without a model), then its statuses outside the 14 known."""
    found = [(UNKNOWN_FIELD, path) for path in model.unknown_paths(record)] if model is not None else []
    return found + [(UNKNOWN_STATUS, status) for status in unknown_statuses(record)]


class _Node:
    """One object of the model: its fields (a _Node, or None for a leaf), its path, and the shapes seen."""

    __slots__ = ("fields", "path", "shapes")

    def __init__(self, path: str):
        self.fields: dict[str, _Node | None] = {}
        self.path = path  # with a trailing dot, "" at the root
        # The keys of an object checked here, in order -> (those the model lacks, (key, node) to look inside).
        self.shapes: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[tuple[str, _Node], ...]]] = {}

    def shape(self, keys: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, _Node], ...]]:
        """The verdict on an object with ``keys`` here, worked out once and remembered (the callers look in
        ``shapes`` first: this is the slow path)."""
        fields = self.fields
        known = (tuple(key for key in keys if key not in fields),
                 tuple((key, fields[key]) for key in keys if fields.get(key) is not None))
        if len(self.shapes) < MAX_SHAPES:
            self.shapes[keys] = known
        return known


class DataModel:
    """A data model's paths (as ``model_paths`` gives them), to check records against.

    Checking a record visits each of its objects that the model describes further, and no other; the verdict
    on an object's keys is remembered by their order, so an object of a shape seen before costs one lookup
    (records of one API share a few shapes per field).
    """

    def __init__(self, paths: Mapping[str, bool]):
        self._root = _Node("")
        for path, leaf in paths.items():  # a parent comes before its children
            *parents, name = path.split(".")
            node = self._root
            for parent in parents:
                node = node.fields[parent]
            node.fields[name] = None if leaf else _Node(path + ".")

    def covers(self, path: str) -> bool:
        """Whether the model knows ``path``: it has it, or a leaf above it."""
        node: _Node | None = self._root
        for name in path.split("."):
            if node is None:
                return True
            if name not in node.fields:
                return False
            node = node.fields[name]
        return True

    def unknown_paths(self, record: Mapping) -> list[str]:
        """The topmost dotted paths ``record`` carries that the model lacks, each once, in the record's order."""
        found: list[str] = []
        _check(record, self._root, found)
        return list(dict.fromkeys(found))


def _check(value: Mapping, node: _Node, found: list[str]) -> None:
    keys = tuple(value)
    unknown, inside = node.shapes.get(keys) or node.shape(keys)
    if unknown:
        found.extend(node.path + key for key in unknown)
    for key, below in inside:
        child = value[key]
        kind = type(child)
        if kind is dict:
            _check(child, below, found)
        elif kind is list:
            for item in child:
                # Inline for the many list items (sites, measurements) the model describes no further.
                if type(item) is dict:
                    keys = tuple(item)
                    known = below.shapes.get(keys) or below.shape(keys)
                    if known[0] or known[1]:
                        _check(item, below, found)
