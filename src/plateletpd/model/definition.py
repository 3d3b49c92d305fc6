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
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from plateletpd.dosing.targets import DoseTarget
from plateletpd.io.display import html_table, short_repr
from plateletpd.io.files import bundled_folder
from plateletpd.errors import (ExpressionError, ModelFileError, ModelWarning, ParameterError,
                     closest)
from plateletpd.io.schema import Document, Field, Table
from plateletpd.model.expressions import (ALL_SYMBOLS, FUNCTIONS, TIME, Expression, check_names,
                          parse_expression)

#: Names of parameters, covariates, states, derived quantities, outputs and drugs. ASCII only:
#: Python folds Unicode identifiers (NFKC), so two distinct Unicode names could become one
#: variable in generated code, and C compilers differ on them.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Model time units accepted in ``[model] time_unit`` and their length in days.
TIME_UNITS = {"h": 1.0 / 24.0, "hour": 1.0 / 24.0, "hours": 1.0 / 24.0,
              "day": 1.0, "days": 1.0, "d": 1.0}

#: The model file's schema (docs/model_files.md): sections, entries, fields, types. Free
#: text is text only: it never reaches generated code except as escaped literals
#: (:func:`plateletpd.model.codegen.comment_text`). Formulas are checked by the builder.
_TEXT, _UNIT = Field("text", default=""), Field(
    "text", required=True, nonempty=True,
    fix='every value needs a unit; write "1" for a dimensionless one')
_TEXTS = Field("list", item=Field("text"), default=[], what='a list of text values, e.g. '
               '["first", "second"]')
_BOUND = Field(low=None)
MODEL_SCHEMA = Table({
    "model": Table({"name": Field("text", required=True, nonempty=True),
                    "description": Field("text", required=True, nonempty=True),
                    "time_unit": Field("text", required=True, choices=tuple(TIME_UNITS)),
                    "references": _TEXTS}, required=True),
    "parameters": Table(names=Table({
        "value": Field(low=None, required=True), "unit": _UNIT, "description": _TEXT,
        "source": Field("text", required=True, nonempty=True, fix="cite where the value "
                        "comes from"), "lower": _BOUND, "upper": _BOUND,
        "per_patient": Field("text", default=None, choices=("standard_normal",))})),
    "covariates": Table(names=Table({
        "unit": _UNIT, "description": Field("text", required=True, nonempty=True),
        "default": _BOUND, "lower": _BOUND, "upper": _BOUND, "source": _TEXT})),
    "states": Table(names=Table({"unit": _UNIT, "description": _TEXT,
                                 "initial": Field("formula", default=0.0)}),
                    required=True, nonempty=True),
    "derived": Table(names=Field("formula")),
    "odes": Table(names=Field("formula"), required=True, nonempty=True),
    "outputs": Table(names=Table({"expression": Field("formula", required=True),
                                  "unit": _UNIT, "description": _TEXT}),
                     required=True, nonempty=True),
    "doses": Table(names=Table({
        "state": Field("text", required=True), "amount_unit": _UNIT,
        "routes": Field("list", item=Field("text", choices=("bolus", "infusion")),
                        nonempty=True, default=["bolus"]),
        "units_per_mg": _BOUND, "bioavailability": Field("formula", default=1.0),
        "lag": Field("formula", default=0.0), "aliases": _TEXTS, "description": _TEXT,
        "administration": Field("text", default="", choices=("", "oral", "sc", "iv"))})),
    "observation": Table(names=Table({term: Table({
        "value": Field(required=True, low=0.0, low_included=True), "unit": _UNIT,
        "source": Field("text", required=True, nonempty=True, fix="cite where the value "
                        "comes from, or write why it is an assumption")})
        for term in ("proportional", "additive")}))})
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
    #: "standard_normal": part of the model's own randomness (e.g. a coefficient of a
    #: stochastic term), drawn for each virtual patient as value + N(0, 1) wherever a
    #: population is drawn, unless the population names it ("" : a fixed typical value)
    per_patient: str = ""

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
class ResidualError:
    """How an output is measured (``[observation.<output>]``): an observation is
    ``value * (1 + proportional * e1) + additive * e2`` with e1, e2 standard normal, floored
    at 0; each term has its unit and source."""

    output: str
    proportional: float = 0.0
    additive: float = 0.0
    sources: tuple[str, ...] = ()

    def standard_deviation(self, value):
        """The SD of an observation of ``value`` (before the floor at 0)."""
        return ((self.proportional * value) ** 2 + self.additive ** 2) ** 0.5


@dataclass(frozen=True)
class Covariate:
    """A per-subject value (body weight, baseline count...) supplied at simulation time."""

    name: str
    unit: str
    description: str
    default: float | None = None
    lower: float = -math.inf
    upper: float = math.inf

    def check(self, value: float, where: str = "") -> float:
        """Return ``value`` as float if finite and within bounds, else raise ParameterError."""
        value = _as_float(value, f"covariate {self.name!r}{where}", ParameterError)
        if not self.lower <= value <= self.upper:
            raise ParameterError(f"covariate {self.name!r}{where}: {value:g} {self.unit} is "
                                 f"outside [{self.lower:g}, {self.upper:g}]")
        return value


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


@dataclass(frozen=True, repr=False)
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
    observation: Mapping[str, ResidualError] = field(default_factory=dict)

    # ------------------------------------------------------------------ names
    @property
    def parameter_names(self) -> list[str]:
        return list(self.parameters)

    @property
    def per_patient_parameters(self) -> list[str]:
        """Parameters the model draws for each virtual patient (``per_patient``), in the
        model file's order."""
        return [p.name for p in self.parameters.values() if p.per_patient]

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

    def __repr__(self) -> str:
        return short_repr("Model", self._summary_items())

    def _summary_items(self) -> list[tuple[str, object]]:
        return [("name", self.name), ("states", len(self.states)),
                ("parameters", len(self.parameters)),
                ("outputs", ", ".join(self.output_names[:6]) +
                 (f", ... ({len(self.outputs)})" if len(self.outputs) > 6 else "")),
                ("drugs", ", ".join(self.drug_names) or "none"), ("path", self.path)]

    def _repr_html_(self) -> str:
        """A notebook summary: the model and its first parameters (value, unit)."""
        return html_table(f"Model {self.name}", self._summary_items(),
                          [(p.name, f"{p.value:g}", p.unit)
                           for p in list(self.parameters.values())[:12]],
                          ("parameter", "value", "unit"))

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
            vector.append(c.check(value))
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
    return bundled_folder("models")


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
    document = Document(path, text, data, ModelFileError)
    return _Builder(document.check(MODEL_SCHEMA), document).build()


def _as_float(value: Any, what: str, error=ModelFileError) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise error(f"{what}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise error(f"{what}: expected a finite number, got {value!r}")
    return value


class _Builder:
    """Turns the checked tables (:data:`MODEL_SCHEMA`) into a Model: names, formulas, their
    order and references, raising ModelFileError with file, line, section and text."""

    def __init__(self, data: dict, document: Document):
        self.data, self.document = data, document
        self.path, self.text = document.path, document.text
        self.seen: dict[str, str] = {}  # name -> section, for duplicate detection

    def fail(self, message: str, section: str, text: str | None = None) -> ModelFileError:
        return ModelFileError(message, path=self.path, section=section, text=text,
                              line=self.document.line(tuple(section.split("."))))

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
        header = self.data["model"]
        time_unit = header["time_unit"]
        parameters = self.parameters()
        covariates = self.covariates()
        values = {**{p.name: p.value for p in parameters.values()},
                  **{c.name: c.default for c in covariates.values()}}
        static = set(values)
        state_tables = self.data["states"]
        for name in state_tables:
            self.declare(name, "states")
        derived_raw = self.data["derived"]
        for name in derived_raw:
            self.declare(name, "derived")
        derived, state_dependent = self.derived(derived_raw, static, set(state_tables))
        everything = static | set(state_tables) | {n for n, _ in derived} | {TIME}
        states = self.states(state_tables, everything, state_dependent)
        outputs = self.outputs(everything)
        targets, modifiers = self.doses(state_tables, static | {
            n for n, _ in derived if n not in state_dependent})
        model = Model(name=str(header["name"]), description=str(header["description"]),
                      time_unit=time_unit, references=tuple(header["references"]),
                      parameters=parameters, covariates=covariates, states=states,
                      derived=tuple(derived), outputs=outputs, dose_targets=targets,
                      dose_modifiers=modifiers, path=self.path, text=self.text,
                      observation=self.observation({o.name for o in outputs}))
        self.warn_unused(model)
        return model

    def observation(self, outputs: set) -> dict[str, ResidualError]:
        result = {}
        for name, terms in self.data["observation"].items():
            if name not in outputs:
                raise self.fail(f"[observation.{name}] names no output; outputs: "
                                f"{', '.join(sorted(outputs))}", f"observation.{name}", name)
            given = {term: value for term, value in terms.items() if value}
            result[name] = ResidualError(name, *(given[t]["value"] if t in given else 0.0
                                                 for t in ("proportional", "additive")),
                                         tuple(t["source"] for t in given.values()))
        return result

    def parameters(self) -> dict[str, Parameter]:
        result = {}
        for name, raw in self.data["parameters"].items():
            self.declare(name, "parameters")
            where = f"parameters.{name}"
            bounds = self.bounds(raw, where)
            if not bounds[0] <= raw["value"] <= bounds[1]:
                raise self.fail(f"value {raw['value']:g} is outside its bounds [{bounds[0]:g}, "
                                f"{bounds[1]:g}]", where, str(raw["value"]))
            result[name] = Parameter(name, raw["value"], raw["unit"], raw["description"],
                                     raw["source"], *bounds, per_patient=raw["per_patient"] or "")
        return result

    def bounds(self, raw: dict, where: str) -> tuple[float, float]:
        """Optional lower/upper bounds (infinite when absent), checked for order."""
        lower, upper = (-math.inf if raw["lower"] is None else raw["lower"],
                        math.inf if raw["upper"] is None else raw["upper"])
        if lower > upper:
            raise self.fail(f"lower bound {lower:g} is above upper bound {upper:g}", where)
        return lower, upper

    def covariates(self) -> dict[str, Covariate]:
        result = {}
        for name, raw in self.data["covariates"].items():
            self.declare(name, "covariates")
            result[name] = Covariate(name, raw["unit"], raw["description"], raw["default"],
                                     *self.bounds(raw, f"covariates.{name}"))
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
        odes = self.data["odes"]
        for name in odes:
            if name not in tables:
                raise self.fail(f"ODE for unknown state {name!r}{closest(name, tables)}; "
                                f"declare it under [states.{name}]", "odes", name)
        initial_known = everything - set(tables) - state_dependent - {TIME}
        states = []
        for name, raw in tables.items():
            where = f"states.{name}"
            if name not in odes:
                raise self.fail(f"state {name!r} has no ODE; add  {name} = \"...\"  under "
                                f"[odes]", "odes")
            initial = self.expression(raw["initial"], where)
            self.known(initial, initial_known, f"{where}.initial", "parameters, covariates "
                       "and derived quantities of those (not states or time)")
            ode = self.expression(odes[name], f"odes.{name}")
            self.known(ode, everything, f"odes.{name}")
            states.append(State(name, raw["unit"], raw["description"], initial, ode))
        return tuple(states)

    def outputs(self, everything: set[str]) -> tuple[Output, ...]:
        outputs = []
        for name, raw in self.data["outputs"].items():
            # outputs have their own namespace (no formula reads them), so an output may
            # expose a derived quantity or a state under the same name
            self.check_name(name, "outputs")
            expression = self.expression(raw["expression"], f"outputs.{name}")
            self.known(expression, everything, f"outputs.{name}")
            outputs.append(Output(name, expression, raw["unit"], raw["description"]))
        return tuple(outputs)

    def doses(self, state_tables: dict, static: set[str]):
        targets, modifiers = [], []
        state_index = {name: i for i, name in enumerate(state_tables)}
        names_seen: set[str] = set()
        for name, raw in self.data["doses"].items():
            where = f"doses.{name}"
            if raw["state"] not in state_index:
                raise self.fail(f"dose target enters unknown state {raw['state']!r}"
                                f"{closest(str(raw['state']), state_index)}", where,
                                str(raw["state"]))
            aliases = tuple(raw["aliases"])
            for label in (name, *aliases):
                if label.lower() in names_seen:
                    raise self.fail(f"duplicate drug name or alias {label!r}", "doses", label)
                names_seen.add(label.lower())
            modifier = []
            for key in ("bioavailability", "lag"):
                expression = self.expression(raw[key], f"{where}.{key}")
                self.known(expression, static, f"{where}.{key}",
                           "parameters and covariates only")
                modifier.append(expression)
            targets.append(DoseTarget(name=name, state=raw["state"],
                                      state_index=state_index[raw["state"]],
                                      amount_unit=raw["amount_unit"],
                                      routes=tuple(raw["routes"]),
                                      units_per_mg=raw["units_per_mg"], aliases=aliases,
                                      description=raw["description"],
                                      administration=raw["administration"]))
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
