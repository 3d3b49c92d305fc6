"""Model files: load, validate and describe a model written as annotated TOML.

A model file is data. It is read with :mod:`tomllib`; its formulas go through
:mod:`plateletpd.model.expressions` (an AST whitelist) and are never passed to ``eval``. See
``docs/model_files.md`` for the format. :func:`load_model` is the entry point; the returned
:class:`Model` knows its parameters, states, outputs and dose targets, and lazily compiles
its kernel (:mod:`plateletpd.model.codegen`, :mod:`plateletpd.numerics.kernels`).
"""

from __future__ import annotations

import hashlib
import keyword
import re
import math
import tomllib
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from plateletpd.dosing.targets import DoseTarget
from plateletpd.errors import (ExpressionError, ModelFileError, ModelWarning, ParameterError,
                     closest)
from plateletpd.model.expressions import (ALL_SYMBOLS, FUNCTIONS, TIME, Expression, check_names,
                          parse_expression)

#: Names of parameters, covariates, states, derived quantities, outputs and drugs. ASCII only:
#: Python folds Unicode identifiers (NFKC), so two distinct Unicode names could become one
#: variable in generated code, and C compilers differ on them.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Free-text fields: strings only. They never reach generated code except as escaped
#: literals (:func:`plateletpd.model.codegen.comment_text`).
_TEXT_FIELDS = frozenset({"name", "description", "unit", "source", "time_unit", "amount_unit",
                          "administration"})
_TEXT_LIST_FIELDS = frozenset({"references", "aliases"})

#: Model time units accepted in ``[model] time_unit`` and their length in days.
TIME_UNITS = {"h": 1.0 / 24.0, "hour": 1.0 / 24.0, "hours": 1.0 / 24.0,
              "day": 1.0, "days": 1.0, "d": 1.0}

_SECTIONS = {"model", "parameters", "covariates", "states", "derived", "odes", "outputs",
             "doses"}
_RESERVED = {TIME, *FUNCTIONS}  # generated code prefixes every other name (codegen)


@dataclass(frozen=True)
class Parameter:
    """A model parameter: a typical value with its unit, provenance and plausible bounds."""

    name: str
    value: float
    unit: str
    description: str
    source: str
    lower: float = -math.inf
    upper: float = math.inf

    def check(self, value: float, where: str = "") -> float:
        """Return ``value`` as float if finite and within bounds, else raise ParameterError."""
        value = _as_float(value, f"parameter {self.name!r}{where}", ParameterError)
        if not self.lower <= value <= self.upper:
            raise ParameterError(
                f"parameter {self.name!r}{where}: value {value:g} {self.unit} is outside its "
                f"bounds [{self.lower:g}, {self.upper:g}]; give a value inside them, or widen "
                f"the bounds in the model file if the literature supports it")
        return value


@dataclass(frozen=True)
class Covariate:
    """A per-subject value (body weight, baseline count...) supplied at simulation time."""

    name: str
    unit: str
    description: str
    default: float | None = None
    lower: float = -math.inf
    upper: float = math.inf


@dataclass(frozen=True)
class State:
    """A compartment: its unit, initial condition and right-hand side."""

    name: str
    unit: str
    description: str
    initial: Expression
    ode: Expression


@dataclass(frozen=True)
class Output:
    """A named quantity recorded in results."""

    name: str
    expression: Expression
    unit: str
    description: str


@dataclass(frozen=True)
class DoseModifier:
    """Per-subject bioavailability (fraction) and lag (model time unit) of a dose target."""

    bioavailability: Expression
    lag: Expression


@dataclass(frozen=True)
class Model:
    """A validated model. Build it with :func:`load_model`; it is immutable.

    ``parameters`` holds the typical values; :meth:`with_parameters` returns a copy with new
    values (unknown names are an error). All models with the same structure share one
    compiled kernel: parameter values travel through arrays.
    """

    name: str
    description: str
    time_unit: str
    references: tuple[str, ...]
    parameters: Mapping[str, Parameter]
    covariates: Mapping[str, Covariate]
    states: tuple[State, ...]
    derived: tuple[tuple[str, Expression], ...]  # in dependency order
    outputs: tuple[Output, ...]
    dose_targets: tuple[DoseTarget, ...]
    dose_modifiers: tuple[DoseModifier, ...]
    path: str = "<string>"
    text: str = field(default="", repr=False)

    # ------------------------------------------------------------------ names
    @property
    def parameter_names(self) -> list[str]:
        return list(self.parameters)

    @property
    def covariate_names(self) -> list[str]:
        return list(self.covariates)

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.states]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def drug_names(self) -> list[str]:
        return [d.name for d in self.dose_targets]

    @property
    def days_per_time_unit(self) -> float:
        """Length of one model time unit in days (1/24 for a model written in hours)."""
        return TIME_UNITS[self.time_unit]

    @property
    def units(self) -> dict[str, str]:
        """Unit of every state and output by name."""
        return {**{s.name: s.unit for s in self.states}, **{o.name: o.unit for o in self.outputs}}

    # ------------------------------------------------------------------ values
    def parameter_table(self):
        """The parameters as a pandas DataFrame (value, unit, bounds, description, source)."""
        import pandas as pd

        return pd.DataFrame([{"name": p.name, "value": p.value, "unit": p.unit,
                              "lower": p.lower, "upper": p.upper,
                              "description": p.description, "source": p.source}
                             for p in self.parameters.values()]).set_index("name")

    def with_parameters(self, values: Mapping[str, float] | None = None, **more: float) -> "Model":
        """A copy with new typical values. Unknown names and out-of-bound values are errors."""
        updates = {**(values or {}), **more}
        self.check_parameter_names(updates)
        new = dict(self.parameters)
        for name, value in updates.items():
            new[name] = replace(new[name], value=new[name].check(value))
        return replace(self, parameters=new)

    def check_parameter_names(self, names) -> None:
        """Raise ParameterError for any name that is not a parameter of this model."""
        self._check_names(names, "parameter", self.parameters, "covariate", self.covariates,
                          "covariates")

    def check_covariate_names(self, names) -> None:
        """Raise ParameterError for any name that is not a covariate of this model."""
        self._check_names(names, "covariate", self.covariates, "parameter", self.parameters,
                          "params")

    def _check_names(self, names, kind, known, other_kind, other, argument) -> None:
        for name in names:
            if name not in known:
                hint = closest(name, known)
                if name in other:
                    hint = f" (it is a {other_kind}: pass it in {argument}=...)"
                listing = ", ".join(known) or "none"
                raise ParameterError(f"{self.name} has no {kind} {name!r}{hint}. "
                                     f"{kind.capitalize()}s: {listing}")

    @cached_property
    def required_covariates(self) -> frozenset[str]:
        """Covariates read by a formula and without a default: they must be given."""
        read = set()
        for expression in self._all_expressions():
            read |= expression.names
        return frozenset(c.name for c in self.covariates.values()
                         if c.default is None and c.name in read)

    def parameter_vector(self, params: Mapping[str, float] | None = None,
                         covariates: Mapping[str, float] | None = None) -> np.ndarray:
        """The kernel's ``p`` array: parameter values then covariate values, checked.

        Covariates that no formula reads and that have no default are NaN (never read).
        """
        params, covariates = dict(params or {}), dict(covariates or {})
        self.check_parameter_names(params)
        self.check_covariate_names(covariates)
        vector = [p.check(params.get(p.name, p.value)) for p in self.parameters.values()]
        for c in self.covariates.values():
            value = covariates.get(c.name, c.default)
            if value is None:
                if c.name in self.required_covariates:
                    raise ParameterError(
                        f"{self.name} needs the covariate {c.name!r} ({c.unit}: "
                        f"{c.description}); pass covariates={{'{c.name}': ...}}")
                vector.append(math.nan)
                continue
            value = _as_float(value, f"covariate {c.name!r}", ParameterError)
            if not c.lower <= value <= c.upper:
                raise ParameterError(f"covariate {c.name!r}: {value:g} {c.unit} is outside "
                                     f"[{c.lower:g}, {c.upper:g}]")
            vector.append(value)
        return np.asarray(vector, dtype=np.float64)

    # ------------------------------------------------------------------ hashes and code
    @cached_property
    def hash(self) -> str:
        """SHA-256 of the model's content (structure and values): provenance of results."""
        return hashlib.sha256(self.text.encode() + repr(
            sorted((p.name, p.value) for p in self.parameters.values())).encode()).hexdigest()

    @cached_property
    def structure_hash(self) -> str:
        """SHA-256 of the generated kernel source: models with equal structure share it."""
        return hashlib.sha256(self.source.encode()).hexdigest()

    @cached_property
    def source(self) -> str:
        """The generated Python source of the numba kernel (inspect it to see the model)."""
        from plateletpd.model.codegen import kernel_source

        return kernel_source(self)

    def c_source(self) -> str:
        """C source of the right-hand side for R's deSolve (compiled-code interface)."""
        from plateletpd.model.codegen import desolve_c_source

        return desolve_c_source(self)

    def _all_expressions(self):
        for state in self.states:
            yield state.initial
            yield state.ode
        for _, expression in self.derived:
            yield expression
        for output in self.outputs:
            yield output.expression
        for modifier in self.dose_modifiers:
            yield modifier.bioavailability
            yield modifier.lag

    def __str__(self) -> str:
        return (f"{self.name}: {self.description} ({len(self.states)} states, "
                f"{len(self.parameters)} parameters, time in {self.time_unit})")


# ====================================================================== loading
def bundled_models_dir() -> Path:
    """The folder of bundled model files (inside the wheel, or models/ in a source tree)."""
    packaged = resources.files("plateletpd") / "_bundled_models"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "models"


def list_models() -> dict[str, str]:
    """Bundled models: name -> one-line description."""
    found = {}
    for path in sorted(bundled_models_dir().glob("*.toml")):
        try:
            with open(path, "rb") as handle:
                found[path.stem] = tomllib.load(handle).get("model", {}).get("description", "")
        except (OSError, tomllib.TOMLDecodeError) as exc:
            found[path.stem] = f"(unreadable: {exc})"
    return found


def load_model(name_or_path: str | Path) -> Model:
    """Load a bundled model by name (see :func:`list_models`) or a model file by path."""
    if isinstance(name_or_path, Model):
        return name_or_path
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ModelFileError(f"no model file at {candidate}")
        return parse_model(candidate.read_text(encoding="utf-8"), path=str(candidate))
    bundled = bundled_models_dir() / f"{name_or_path}.toml"
    if bundled.is_file():
        return parse_model(bundled.read_text(encoding="utf-8"), path=str(bundled))
    names = list(list_models())
    raise ModelFileError(f"no bundled model named {str(name_or_path)!r}"
                         f"{closest(str(name_or_path), names)}; bundled models: "
                         f"{', '.join(names)}; or give the path of a .toml model file")


def parse_model(text: str, path: str = "<string>") -> Model:
    """Parse and validate model-file text. Errors name the file, section and text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(f"not valid TOML: {exc}", path=path) from None
    return _Builder(data, path, text).build()


def _as_float(value: Any, what: str, error=ModelFileError) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise error(f"{what}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise error(f"{what}: expected a finite number, got {value!r}")
    return value


class _Builder:
    """Turns the TOML tables into a Model, raising ModelFileError with file/section/text."""

    def __init__(self, data: dict, path: str, text: str):
        self.data, self.path, self.text = data, path, text
        self.seen: dict[str, str] = {}  # name -> section, for duplicate detection

    def fail(self, message: str, section: str, text: str | None = None) -> ModelFileError:
        return ModelFileError(message, path=self.path, section=section, text=text)

    def table(self, section: str, required: bool = False) -> dict:
        value = self.data.get(section, {})
        if required and not value:
            raise self.fail(f"the [{section}] table is missing or empty", section)
        if not isinstance(value, dict):
            raise self.fail("expected a table", section)
        return value

    def entry(self, section: str, name: str, value: Any, keys: set[str],
              required: set[str]) -> dict:
        where = f"{section}.{name}" if name else section
        if not isinstance(value, dict):
            raise self.fail(f"expected a table with {', '.join(sorted(required))}", where,
                            str(value))
        for key in value:
            if key not in keys:
                raise self.fail(f"unknown field {key!r}{closest(key, keys)}; allowed: "
                                f"{', '.join(sorted(keys))}", where, key)
        for key in sorted(required):
            if key not in value or (isinstance(value[key], str) and not value[key].strip()):
                raise self.fail(f"{name!r} has no {key!r}" + (
                    " (every parameter needs a unit; write \"1\" for a dimensionless one)"
                    if key == "unit" else ""), where)
        for key in _TEXT_FIELDS & set(value):
            if not isinstance(value[key], str):
                raise self.fail(f"{key!r} must be a string (text in quotes), got "
                                f"{type(value[key]).__name__}", where, repr(value[key])[:80])
        for key in _TEXT_LIST_FIELDS & set(value):
            if not (isinstance(value[key], list)
                    and all(isinstance(item, str) for item in value[key])):
                raise self.fail(f"{key!r} must be a list of strings, e.g. [\"first\", "
                                f"\"second\"]", where, repr(value[key])[:80])
        return value

    def check_name(self, name: str, section: str) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or keyword.iskeyword(name):
            raise self.fail("a name must be an ASCII identifier (letters A-Z a-z, digits, _; "
                            "starting with a letter; not a Python keyword)", section, str(name))
        if name.startswith("_") or name in _RESERVED:
            raise self.fail(f"the name {name!r} is reserved; reserved names: "
                            f"{', '.join(sorted(_RESERVED))} and names starting with '_'",
                            section, name)

    def declare(self, name: str, section: str) -> None:
        self.check_name(name, section)
        if name in self.seen:
            raise self.fail(f"duplicate name {name!r}: already declared in "
                            f"[{self.seen[name]}]", section, name)
        self.seen[name] = section

    def expression(self, value: Any, section: str) -> Expression:
        try:
            return parse_expression(value)
        except ExpressionError as exc:
            raise self.fail(str(exc), section, str(value)) from None

    def known(self, expression: Expression, known, section: str,
              allowed: str = ALL_SYMBOLS) -> None:
        try:
            check_names(expression, known, f"[{section}]", allowed)
        except ExpressionError as exc:
            raise self.fail(str(exc), section, expression.text) from None

    # --------------------------------------------------------------------- sections
    def build(self) -> Model:
        unknown = set(self.data) - _SECTIONS
        if unknown:
            name = sorted(unknown)[0]
            raise self.fail(f"unknown section{closest(name, _SECTIONS)}; sections: "
                            f"{', '.join(sorted(_SECTIONS))}", name, name)
        header = self.entry("model", "", self.table("model", required=True),
                            {"name", "description", "time_unit", "references"},
                            {"name", "description", "time_unit"})
        time_unit = header["time_unit"]
        if time_unit not in TIME_UNITS:
            raise self.fail(f"time_unit must be one of {', '.join(TIME_UNITS)}", "model",
                            str(time_unit))
        parameters = self.parameters()
        covariates = self.covariates()
        values = {**{p.name: p.value for p in parameters.values()},
                  **{c.name: c.default for c in covariates.values()}}
        static = set(values)
        state_tables = self.table("states", required=True)
        for name in state_tables:
            self.declare(name, "states")
        derived_raw = self.table("derived")
        for name in derived_raw:
            self.declare(name, "derived")
        derived, state_dependent = self.derived(derived_raw, static, set(state_tables))
        everything = static | set(state_tables) | {n for n, _ in derived} | {TIME}
        states = self.states(state_tables, everything, state_dependent)
        outputs = self.outputs(everything)
        targets, modifiers = self.doses(state_tables, static | {
            n for n, _ in derived if n not in state_dependent})
        model = Model(name=str(header["name"]), description=str(header["description"]),
                      time_unit=time_unit, references=tuple(header.get("references", ())),
                      parameters=parameters, covariates=covariates, states=states,
                      derived=tuple(derived), outputs=outputs, dose_targets=targets,
                      dose_modifiers=modifiers, path=self.path, text=self.text)
        self.warn_unused(model)
        return model

    def parameters(self) -> dict[str, Parameter]:
        result = {}
        for name, raw in self.table("parameters").items():
            self.declare(name, "parameters")
            raw = self.entry("parameters", name, raw,
                             {"value", "unit", "description", "source", "lower", "upper"},
                             {"value", "unit", "source"})
            where = f"parameters.{name}"
            bounds = self.bounds(raw, where)
            value = self._number(raw["value"], where)
            if not bounds[0] <= value <= bounds[1]:
                raise self.fail(f"value {value:g} is outside its bounds [{bounds[0]:g}, "
                                f"{bounds[1]:g}]", where, str(raw["value"]))
            result[name] = Parameter(name, value, str(raw["unit"]),
                                     str(raw.get("description", "")), str(raw["source"]),
                                     bounds[0], bounds[1])
        return result

    def bounds(self, raw: dict, where: str) -> tuple[float, float]:
        """Optional lower/upper bounds (infinite when absent), checked for order."""
        lower, upper = (self._number(raw[k], f"{where}.{k}") if k in raw else default
                        for k, default in (("lower", -math.inf), ("upper", math.inf)))
        if lower > upper:
            raise self.fail(f"lower bound {lower:g} is above upper bound {upper:g}", where)
        return lower, upper

    def _number(self, value: Any, where: str) -> float:
        try:
            return _as_float(value, where)
        except ModelFileError as exc:
            raise self.fail(str(exc), where, str(value)) from None

    def covariates(self) -> dict[str, Covariate]:
        result = {}
        for name, raw in self.table("covariates").items():
            self.declare(name, "covariates")
            raw = self.entry("covariates", name, raw,
                             {"unit", "description", "default", "lower", "upper", "source"},
                             {"unit", "description"})
            where = f"covariates.{name}"
            default = self._number(raw["default"], where) if "default" in raw else None
            result[name] = Covariate(name, str(raw["unit"]), str(raw["description"]), default,
                                     *self.bounds(raw, where))
        return result

    def derived(self, raw: dict, static: set[str], state_names: set[str]):
        """Derived quantities in dependency order, and the set that depends on states/time."""
        parsed = {}
        for name, text in raw.items():
            parsed[name] = self.expression(text, f"derived.{name}")
            self.known(parsed[name], static | state_names | set(raw) | {TIME},
                       f"derived.{name}")
        order, state_dependent = [], set()
        status: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(name: str, chain: list[str]) -> None:
            if status.get(name) == 2:
                return
            if status.get(name) == 1:
                cycle = chain[chain.index(name):] + [name]
                raise self.fail("cycle among derived quantities: " + " -> ".join(cycle),
                                "derived", str(raw[name]))
            status[name] = 1
            for dependency in sorted(parsed[name].names & set(parsed)):
                visit(dependency, chain + [name])
            status[name] = 2
            order.append((name, parsed[name]))
            if parsed[name].names & (state_names | {TIME} | state_dependent):
                state_dependent.add(name)

        for name in parsed:
            visit(name, [])
        return order, state_dependent

    def states(self, tables: dict, everything: set[str], state_dependent: set[str]):
        odes = self.table("odes", required=True)
        for name in odes:
            if name not in tables:
                raise self.fail(f"ODE for unknown state {name!r}{closest(name, tables)}; "
                                f"declare it under [states.{name}]", "odes", name)
        initial_known = everything - set(tables) - state_dependent - {TIME}
        states = []
        for name, raw in tables.items():
            where = f"states.{name}"
            raw = self.entry("states", name, raw, {"unit", "description", "initial"},
                             {"unit"})
            if name not in odes:
                raise self.fail(f"state {name!r} has no ODE; add  {name} = \"...\"  under "
                                f"[odes]", "odes")
            initial = self.expression(raw.get("initial", 0.0), where)
            self.known(initial, initial_known, f"{where}.initial", "parameters, covariates "
                       "and derived quantities of those (not states or time)")
            ode = self.expression(odes[name], f"odes.{name}")
            self.known(ode, everything, f"odes.{name}")
            states.append(State(name, str(raw["unit"]), str(raw.get("description", "")),
                                initial, ode))
        return tuple(states)

    def outputs(self, everything: set[str]) -> tuple[Output, ...]:
        outputs = []
        for name, raw in self.table("outputs", required=True).items():
            # outputs have their own namespace (no formula reads them), so an output may
            # expose a derived quantity or a state under the same name
            self.check_name(name, "outputs")
            raw = self.entry("outputs", name, raw, {"expression", "unit", "description"},
                             {"expression", "unit"})
            expression = self.expression(raw["expression"], f"outputs.{name}")
            self.known(expression, everything, f"outputs.{name}")
            outputs.append(Output(name, expression, str(raw["unit"]),
                                  str(raw.get("description", ""))))
        return tuple(outputs)

    def doses(self, state_tables: dict, static: set[str]):
        targets, modifiers = [], []
        state_index = {name: i for i, name in enumerate(state_tables)}
        names_seen: set[str] = set()
        for name, raw in self.table("doses").items():
            where = f"doses.{name}"
            raw = self.entry("doses", name, raw,
                             {"state", "amount_unit", "routes", "units_per_mg",
                              "bioavailability", "lag", "aliases", "description",
                              "administration"},
                             {"state", "amount_unit"})
            if raw["state"] not in state_index:
                raise self.fail(f"dose target enters unknown state {raw['state']!r}"
                                f"{closest(str(raw['state']), state_index)}", where,
                                str(raw["state"]))
            routes = raw.get("routes", ["bolus"])
            if not isinstance(routes, list) or not routes or \
                    any(r not in ("bolus", "infusion") for r in routes):
                raise self.fail("routes must be a list of 'bolus' and/or 'infusion'", where,
                                str(routes))
            aliases = tuple(str(a) for a in raw.get("aliases", ()))
            for label in (name, *aliases):
                if label.lower() in names_seen:
                    raise self.fail(f"duplicate drug name or alias {label!r}", "doses", label)
                names_seen.add(label.lower())
            administration = str(raw.get("administration", ""))
            if administration not in ("", "oral", "sc", "iv"):
                raise self.fail("administration must be 'oral', 'sc' or 'iv'", where,
                                administration)
            units_per_mg = raw.get("units_per_mg")
            if units_per_mg is not None:
                units_per_mg = self._number(units_per_mg, where)
            modifier = []
            for key, default in (("bioavailability", 1.0), ("lag", 0.0)):
                expression = self.expression(raw.get(key, default), f"{where}.{key}")
                self.known(expression, static, f"{where}.{key}",
                           "parameters and covariates only")
                modifier.append(expression)
            targets.append(DoseTarget(name=name, state=raw["state"],
                                      state_index=state_index[raw["state"]],
                                      amount_unit=str(raw["amount_unit"]),
                                      routes=tuple(routes),
                                      units_per_mg=units_per_mg, aliases=aliases,
                                      description=str(raw.get("description", "")),
                                      administration=administration))
            modifiers.append(DoseModifier(*modifier))
        return tuple(targets), tuple(modifiers)

    def warn_unused(self, model: Model) -> None:
        read: set[str] = set()
        for expression in model._all_expressions():
            read |= expression.names
        unused = [name for name in model.parameters if name not in read]
        if unused:
            warnings.warn(f"{self.path}: parameter(s) {', '.join(unused)} are not used by any "
                          f"formula", ModelWarning, stacklevel=4)
