"""One schema layer for every TOML input: model files, trial files, fit configurations (and
the sweep grid given on the command line).

Each input declares its tables and fields once, as :class:`Table` and :class:`Field` values
(type, required or default, range, unit, allowed values, the kind of a list's items); one
engine, :meth:`Document.check`, checks a parsed file against the declaration and returns the
values with defaults filled in (numbers as float, whole numbers as int, ``false`` as None
where a rule may be switched off). Every problem names the file, the line, the table and the
key, what was expected, what was given and how to fix it::

    trial.toml, line 31 [response] by_day must be a number in (0, 42], got 400; the response
    is judged within the follow-up: lower it or raise [trial] follow_up_days (42)

Unknown keys are refused with a "did you mean" hint. When a file has several problems the
first by line is reported. The same :meth:`Document.fail` gives the callers' own checks
(a drug the model does not know, a cycle among formulas) the same file, line and table.

TOML parsers do not keep line numbers, so :meth:`Document.line` finds a key's line in the
text: through ``[table]`` and ``[table.name]`` headers, the n-th ``[[array]]`` entry, and
inline tables (a key inside ``{ ... }`` is on its parent's line).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from plateletpd.errors import closest
from plateletpd.io.inputs import number_problem, read_toml

#: a table header, ``[name]`` or ``[[name]]``; the name without spaces or quotes
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class Ref:
    """A bound that is the checked value of another field: the innermost enclosing table
    whose schema declares ``path[0]`` is searched first (``Ref("trial", "follow_up_days")``
    from a [response] field, ``Ref("follow_up_days")`` from an arm's inline table)."""

    path: tuple[str, ...]

    def __init__(self, *path: str):
        object.__setattr__(self, "path", path)


@dataclass(frozen=True)
class Field:
    """One value of a table.

    ``kind`` is "number", "text", "boolean", "formula" (text or a number), "list" (of
    ``item`` values), "value" (any of those, checked where it is used) or "names" (one non-empty text or a non-empty list of distinct ones:
    a trial arm's data arms). Numbers lie in the interval from ``low`` (excluded unless
    ``low_included``) to ``high`` (included); either may be a :class:`Ref`. ``may_be_false``:
    ``false`` switches the rule off (the value is None). ``what`` replaces the generic
    description of what is expected ("a positive integer"); ``fix`` says how to repair a bad
    value (``{high}`` is replaced by the upper bound); ``unit`` is documentation.
    """

    kind: str = "number"
    required: bool = False
    default: Any = None
    low: float | None | Ref = 0.0
    high: float | None | Ref = None
    low_included: bool = False
    whole: bool = False
    may_be_false: bool = False
    choices: tuple = ()
    nonempty: bool = False
    item: "Field | None" = None
    unit: str = ""
    what: str = ""
    fix: str = ""


@dataclass(frozen=True)
class Table:
    """A table: its ``fields`` by key, or, for a table of names (``[parameters]``, the
    ``cv = { name = value }`` of a population), ``names``: what every value must be.
    ``many``: a list of such tables (``[[arms]]`` or ``[{...}, {...}]``; a single table is
    taken as a list of one where ``single_ok``). ``what`` names the expected form in
    messages; ``hint`` is added to the list of allowed keys of an unknown one, which
    ``key_name`` names ("section" at the top of a file, "field" below)."""

    fields: Mapping[str, "Field | Table"] = field(default_factory=dict)
    names: "Field | Table | None" = None
    required: bool = False
    nonempty: bool = False
    many: bool = False
    single_ok: bool = False
    what: str = ""
    hint: str = ""
    key_name: str = ""

    def keys(self) -> list[str]:
        return list(self.fields)


Where = tuple  # a value's place: keys (str) and list positions (int), e.g. ("arms", 1, "name")


def label(where: Where, table: bool = False) -> str:
    """``[arms #2.rescue] below`` for ("arms", 1, "rescue", "below"); the table alone,
    ``[arms #2]`` or ``[trial]``, for a list entry, a section or a ``table``."""
    parts: list[str] = []
    for part in where:
        if isinstance(part, int):
            parts[-1] += f" #{part + 1}"
        else:
            parts.append(part)
    if not parts:
        return ""
    if table or len(parts) == 1 or isinstance(where[-1], int):
        return f"[{'.'.join(parts)}]"
    table, key = parts[:-1], parts[-1:] or [""]
    return (f"[{'.'.join(table)}] " if table else "") + key[0]


class Document:
    """A TOML input: its file name, text, parsed tables and the error class of its kind."""

    def __init__(self, path: str | Path, text: str, data: dict,
                 error: Callable[[str], Exception]):
        self.path, self.text, self.data, self.error = str(path), text, data, error
        self.lines = text.splitlines()
        self.headers = []  # (line index, dotted name, array?)
        for index, line in enumerate(self.lines):
            match = _HEADER.match(line)
            if match:
                name = re.sub(r"[\s\"']", "", match.group(2))
                self.headers.append((index, name, match.group(1) == "[["))

    @classmethod
    def read(cls, path: str | Path, error: Callable[[str], Exception], what: str) -> "Document":
        """Read a TOML file; unreadable or invalid files raise ``error`` naming it."""
        text, data = read_toml(path, error, what)
        return cls(path, text, data, error)

    # ------------------------------------------------------------------ lines
    def line(self, where: Where) -> int:
        """1-based line of the value at ``where`` (of its nearest enclosing table or key
        when the value itself is absent; 1 for the document)."""
        number, scope, name = 0, -1, []  # line index, header line of the scope, table name
        for position, part in enumerate(where):
            if isinstance(part, int):
                entries = [i for i, text, array in self.headers
                           if array and text == ".".join(name)]
                if part >= len(entries):  # an inline list: its elements are on its line
                    break
                number = scope = entries[part]
                continue
            name = name + [part]
            dotted = ".".join(name)
            header = next((i for i, text, _ in self.headers if text == dotted and i > scope),
                          None)
            if header is not None:
                number = scope = header
                continue
            if any(text.startswith(dotted + ".") for _, text, _ in self.headers):
                continue  # only sub-tables are declared ([states.central])
            key = self._key_line(part, scope)
            if key is None:
                break
            number = key
            if any(isinstance(p, str) for p in where[position + 1:]):
                # a key inside an inline value stays on this line
                value = self.lines[key].split("=", 1)[1]
                if "{" in value or "[" in value:
                    break
        return number + 1

    def _key_line(self, key: str, scope: int) -> int | None:
        """Index of the line ``key = ...`` in the table whose header is line ``scope``
        (-1: before the first header), or None."""
        pattern = re.compile(rf"^\s*([\"']?){re.escape(key)}\1\s*=")
        for index in range(scope + 1, len(self.lines)):
            if _HEADER.match(self.lines[index]):
                return None
            if pattern.match(self.lines[index]):
                return index
        return None

    # ------------------------------------------------------------------ errors
    def fail(self, where: Where, message: str, joiner: str = ": ",
             line: int | None = None, table: bool = False) -> Exception:
        """The error "FILE, line N [table] key: message" for the value at ``where`` (on
        ``line`` when given; "[table.key]: message" for a ``table``)."""
        place = label(where, table)
        text = f"{place}{joiner}{message}" if place else message
        if not self.lines:  # not a file (the command line's --grid)
            return self.error(f"{self.path} {text}")
        return self.error(f"{self.path}, line {line or self.line(where)} {text}")

    # ------------------------------------------------------------------ checking
    def check(self, schema: Table, where: Where = ()) -> dict:
        """The tables at ``where`` checked against ``schema``, defaults filled in; the first
        problem by line raises this document's error."""
        problems: list[tuple[int, int, Exception]] = []
        data = self.data
        for part in where:
            data = data[part]
        checked = _Checker(self, problems).table(data, schema, where, [])
        if problems:
            raise min(problems, key=lambda problem: problem[:2])[2]
        return checked


class _Checker:
    """One pass over a document: values checked against their schema, problems collected."""

    def __init__(self, document: Document, problems: list):
        self.document, self.problems = document, problems

    def problem(self, where: Where, message: str, joiner: str = " ",
                at: Where | None = None) -> None:
        """Record a problem of the value at ``where``, on the line of ``at`` (``where``);
        with ``at``, the problem is one of the table at ``where``."""
        line = self.document.line(where if at is None else at)
        self.problems.append((line, len(self.problems), self.document.fail(
            where, message, joiner, line, table=at is not None)))

    def value(self, value: Any, schema: "Field | Table", where: Where, scopes: list) -> Any:
        if isinstance(schema, Table):
            if schema.many:
                return self.tables(value, schema, where, scopes)
            return self.table(value, schema, where, scopes)
        return self.field(value, schema, where, scopes)

    def tables(self, value: Any, schema: Table, where: Where, scopes: list) -> list:
        if isinstance(value, dict) and schema.single_ok:
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            top = len(where) == 1
            what = schema.what or (f"a list of [[{where[-1]}]] tables" if top else
                                   "a list of tables")
            self.problem(where, f"must be {what}, got {value!r}"
                         + (f"; write each entry under its own [[{where[-1]}]] header"
                            if top else ""))
            return []
        single = Table(schema.fields, schema.names, what=schema.what, hint=schema.hint)
        return [self.table(entry, single, (*where, index), scopes)
                for index, entry in enumerate(value)]

    def table(self, value: Any, schema: Table, where: Where, scopes: list) -> dict:
        if not isinstance(value, dict):
            what = schema.what or (f"a [{where[-1]}] table" if len(where) == 1 else
                                   "a table of " + ", ".join(schema.keys())
                                   if schema.fields else "a table such as { name = value }")
            self.problem(where, f"must be {what}, got {value!r}")
            return {}
        if schema.nonempty and not value:
            self.problem(where, "must not be empty" + (f"; {schema.hint}" if schema.hint
                                                       else ""))
        scopes = [*scopes, (schema, value, where)]
        checked: dict = {}
        if schema.names is not None:
            for key, item in value.items():
                checked[key] = self.value(item, schema.names, (*where, key), scopes)
            return checked
        for key in value:
            if key not in schema.fields:
                kind = schema.key_name or ("section" if not where else "field")
                shown = f"[{key}]" if kind == "section" else repr(key)
                self.problem(where, f"unknown {kind} {shown}{closest(key, schema.fields)}; "
                             f"{'allowed' if kind == 'field' else kind + 's'}: "
                             f"{', '.join(schema.fields)}{schema.hint}", ": ", at=(*where, key))
        for key, item in schema.fields.items():
            if key in value:
                checked[key] = self.value(value[key], item, (*where, key), scopes)
            elif item.required:
                self.problem((*where, key), "is required" + (
                    f": {item.fix}" if isinstance(item, Field) and item.fix else ""))
            elif isinstance(item, Table):  # absent: no entries, or its defaults (None
                # when it has required keys: an optional rule such as an arm's rescue)
                checked[key] = [] if item.many else None if any(
                    getattr(f, "required", False) for f in item.fields.values()) else \
                    self.table({}, item, (*where, key), scopes)
            else:
                checked[key] = None if item.default is None else self.field(
                    item.default, item, (*where, key), scopes)
        return checked

    def bound(self, bound: Any, scopes: list) -> Any:
        """A number, or the checked value of the field a :class:`Ref` names (None when that
        value is itself bad: its own problem is reported)."""
        if not isinstance(bound, Ref):
            return bound
        for schema, data, where in reversed(scopes):
            if bound.path[0] in schema.fields:
                for part in bound.path[:-1]:
                    schema, data = schema.fields[part], data.get(part, {})
                    where = (*where, part)
                field_schema = schema.fields[bound.path[-1]]
                value = data.get(bound.path[-1], field_schema.default) \
                    if isinstance(data, dict) else None
                quiet = _Checker(self.document, [])
                checked = quiet.field(value, field_schema, (*where, bound.path[-1]), scopes)
                return None if quiet.problems else checked
        raise LookupError(f"schema: no field {'.'.join(bound.path)} encloses it")

    def field(self, value: Any, schema: Field, where: Where, scopes: list) -> Any:
        kind = schema.kind
        if kind == "number":
            if value is False and schema.may_be_false:
                return None
            high = self.bound(schema.high, scopes)
            problem = number_problem(value, self.bound(schema.low, scopes), high,
                                     schema.low_included, schema.whole)
            if problem and schema.what:
                problem = f"must be {schema.what}, got {value!r}"
            if problem:
                off = "; false turns the rule off" if schema.may_be_false else ""
                fix = f"; {schema.fix.format(high=math.inf if high is None else high)}" \
                    if schema.fix else ""
                self.problem(where, f"{problem}{off}{fix}")
                return None
            return int(value) if schema.whole else float(value)
        if kind == "names":
            return self.names(value, schema, where)
        expected = {"text": (str,), "boolean": (bool,), "formula": (str, int, float),
                    "list": (list,), "value": (str, int, float, bool, list)}[kind]
        good = isinstance(value, expected) and not (kind == "formula" and
                                                    isinstance(value, bool))
        if good and kind == "list":
            good = all(self.is_item(item, schema.item) for item in value) and (
                bool(value) or not schema.nonempty)
        if good and kind == "text" and schema.nonempty:
            good = bool(value.strip())
        if good and schema.choices and value not in schema.choices:
            self.problem(where, f"must be one of {', '.join(map(repr, schema.choices))}, got "
                         f"{value!r}{closest(str(value), schema.choices)}")
            return None
        if not good:
            what = schema.what or {
                "text": "non-empty text in quotes" if schema.nonempty else "text in quotes",
                "boolean": "true or false", "formula": "a formula (text in quotes) or a number",
                "list": f"a list of {self.items(schema.item)}",
                "value": "a number, text, true/false or a list"}[kind]
            fix = f"; {schema.fix}" if schema.fix else ""
            self.problem(where, f"must be {what}, got {value!r}{fix}")
            return None
        return list(value) if kind == "list" else value

    def names(self, value: Any, schema: Field, where: Where) -> Any:
        """A "names" value: text, or a list of distinct texts (returned as given)."""
        texts = [value] if isinstance(value, str) else value
        good = isinstance(texts, list) and bool(texts) and all(
            isinstance(text, str) and text.strip() for text in texts)
        if good and len(set(texts)) == len(texts):
            return value
        fix = f"; {schema.fix}" if schema.fix else ""
        if good:
            twice = next(text for text in texts if texts.count(text) > 1)
            self.problem(where, f"names {twice!r} twice in {value!r}; give each name "
                         f"once{fix}")
        else:
            what = schema.what or "a name in quotes or a list of names, e.g. ['a', 'b']"
            self.problem(where, f"must be {what}, got {value!r}{fix}")
        return None

    @staticmethod
    def is_item(value: Any, schema: Field | None) -> bool:
        if schema is None:
            return True
        if schema.kind == "number":
            return number_problem(value, schema.low, schema.high, schema.low_included,
                                  schema.whole) is None
        if schema.choices and value not in schema.choices:
            return False
        return isinstance(value, str) if schema.kind == "text" else isinstance(value, bool)

    @staticmethod
    def items(schema: Field | None) -> str:
        if schema is None:
            return "values"
        if schema.choices:
            return " and/or ".join(map(repr, schema.choices))
        return {"number": "whole numbers" if schema.whole else "numbers",
                "text": "text values", "boolean": "true/false values"}[schema.kind]


def number_table(low: float | None = 0.0, high: float | None = None,
                 low_included: bool = True) -> Table:
    """A table of names, each a number: ``cv = { name = 0.3 }``."""
    return Table(names=Field(low=low, high=high, low_included=low_included))

