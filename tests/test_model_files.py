"""Tests of plateletpd.model.definition: loading, validating and updating model files.

Sources of the numbers used below:
- "test fixture": values of the model texts written in this module (made up; they only
  need to be internally consistent).
- "friberg_platelets.toml": the bundled model file (gamma bounds [0, 2]).
- "hand-computed": arithmetic shown next to the number.
"""

from __future__ import annotations

import math
import re
import tomllib
import warnings

import numpy as np
import pytest

import plateletpd
from plateletpd import ModelFileError, ModelWarning, ParameterError, load_model, parse_model
from plateletpd.model.definition import bundled_models_dir

PATH = "mini.toml"  # file name given to parse_model, expected in every message

MINI = """\
[model]
name = "mini"
description = "two-state test model"
time_unit = "h"

[parameters]
elimination_rate = { value = 0.5, unit = "1/h", lower = 0.0, upper = 10.0, source = "test fixture" }
volume = { value = 10.0, unit = "L", lower = 0.1, source = "test fixture" }
baseline = { value = 100.0, unit = "10^9/L", lower = 0.0, source = "test fixture" }

[states.central]
unit = "mg"
initial = 0

[states.circulating]
unit = "10^9/L"
initial = "baseline"

[derived]
concentration = "central / volume"

[odes]
central = "-elimination_rate * central"
circulating = "elimination_rate * (baseline - circulating) - concentration"

[outputs.platelets]
expression = "circulating"
unit = "10^9/L"

[doses.drug]
state = "central"
amount_unit = "mg"
routes = ["bolus", "infusion"]
"""

EXTRA_PARAMETER = '{ value = 1.0, unit = "1", source = "test fixture" }'

def mutate(*replacements: tuple[str, str], text: str = MINI) -> str:
    """``text`` with each (old, new) applied; each ``old`` must occur exactly once."""
    for old, new in replacements:
        assert text.count(old) == 1, f"fixture text {old!r} is not unique"
        text = text.replace(old, new)
    return text


def parse_error(text: str) -> str:
    """The message of the ModelFileError raised by parsing ``text`` as PATH."""
    with pytest.raises(ModelFileError) as caught:
        parse_model(text, path=PATH)
    return str(caught.value)


def assert_mentions(message: str, *fragments: str) -> None:
    for fragment in (PATH, *fragments):
        assert fragment in message, f"{fragment!r} not in message:\n{message}"


def parse_quietly(text: str = MINI):
    """Parse ``text``, turning any warning (an unused parameter...) into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse_model(text, path=PATH)


# ------------------------------------------------------------------------- valid model
def test_fixture_model_is_valid():
    model = parse_quietly()
    assert model.parameter_names == ["elimination_rate", "volume", "baseline"]
    assert model.state_names == ["central", "circulating"]
    assert model.output_names == ["platelets"]
    assert model.drug_names == ["drug"]
    assert model.path == PATH
    assert model.parameters["volume"].value == 10.0  # test fixture
    assert model.parameters["elimination_rate"].upper == 10.0  # test fixture


# ------------------------------------------------------------------------------ errors
# (id, replacements, fragments of the message besides PATH: section, offending text, hint)
ERROR_CASES = [
    ("unknown section",
     [("[derived]", "[derivd]")],
     ["unknown section [derivd]", "did you mean 'derived'"]),
    ("unknown symbol in ODE",
     [('central = "-elimination_rate * central"', 'central = "-elimnation_rate * central"')],
     ["[odes.central]", "unknown symbol 'elimnation_rate'", "did you mean 'elimination_rate'",
      "-elimnation_rate * central"]),
    ("unknown symbol in derived",
     [('"central / volume"', '"central / volum"')],
     ["[derived.concentration]", "unknown symbol 'volum'", "did you mean 'volume'"]),
    ("unknown symbol in output",
     [('expression = "circulating"', 'expression = "circulatin"')],
     ["[outputs.platelets]", "unknown symbol 'circulatin'", "did you mean 'circulating'"]),
    ("state without ODE",
     [('central = "-elimination_rate * central"\n', "")],
     ["[odes]", "state 'central' has no ODE"]),
    ("ODE for unknown state",
     [("[odes]\n", '[odes]\nperipheral = "0"\n')],
     ["[odes]", "ODE for unknown state 'peripheral'", "'peripheral'"]),
    ("cycle among derived",
     [('concentration = "central / volume"',
       'concentration = "central / volume"\na = "b + 1"\nb = "a * 2"')],
     ["[derived]", "cycle among derived quantities: a -> b -> a"]),
    ("self-referencing derived",
     [('"central / volume"', '"concentration / volume"')],
     ["[derived]", "cycle among derived quantities: concentration -> concentration"]),
    ("parameter and state with the same name",
     [("[parameters]\n", f"[parameters]\ncentral = {EXTRA_PARAMETER}\n")],
     ["[states]", "duplicate name 'central'", "already declared in [parameters]"]),
    ("parameter and derived with the same name",
     [("[parameters]\n", f"[parameters]\nconcentration = {EXTRA_PARAMETER}\n")],
     ["[derived]", "duplicate name 'concentration'", "already declared in [parameters]"]),
    ("parameter without unit",
     [('value = 10.0, unit = "L", ', "value = 10.0, ")],
     ["[parameters.volume] unit is required", "dimensionless"]),
    ("parameter with empty unit",
     [('unit = "L"', 'unit = " "')],
     ["[parameters.volume] unit must be non-empty text", "got ' '"]),
    ("per-patient draw of an unknown distribution",
     [('baseline = { value = 100.0, unit = "10^9/L", lower = 0.0, source = "test fixture" }',
       'baseline = { value = 100.0, unit = "10^9/L", lower = 0.0, source = "test fixture", '
       'per_patient = "uniform" }')],
     ["[parameters.baseline] per_patient must be one of 'standard_normal'", "got 'uniform'"]),
    ("parameter without source",
     [('lower = 0.1, source = "test fixture"', "lower = 0.1")],
     ["[parameters.volume] source is required"]),
    ("value above upper bound",
     [("value = 0.5", "value = 20.0")],
     ["[parameters.elimination_rate]", "value 20 is outside its bounds [0, 10]", "'20.0'"]),
    ("value below lower bound",
     [("value = 10.0", "value = 0.01")],
     ["[parameters.volume]", "value 0.01 is outside its bounds [0.1, inf]"]),
    ("lower above upper",
     [("lower = 0.0, upper = 10.0", "lower = 11.0, upper = 10.0")],
     ["[parameters.elimination_rate]", "lower bound 11 is above upper bound 10"]),
    ("non-numeric value",
     [("value = 0.5", 'value = "fast"')],
     ["[parameters.elimination_rate] value must be a number", "'fast'"]),
    ("boolean value",
     [("value = 0.5", "value = true")],
     ["[parameters.elimination_rate] value must be a number", "True"]),
    ("infinite value",
     [("value = 100.0", "value = inf")],
     ["[parameters.baseline] value must be a number", "got inf"]),
    ("unknown field in a parameter",
     [("value = 0.5", "valeu = 0.5")],
     ["[parameters.elimination_rate]", "unknown field 'valeu'", "did you mean 'value'"]),
    ("unknown field in a state",
     [('[states.central]\nunit = "mg"', '[states.central]\nunit = "mg"\nintial = 1')],
     ["[states.central]", "unknown field 'intial'", "did you mean 'initial'"]),
    ("parameter entry not a table",
     [('volume = { value = 10.0, unit = "L", lower = 0.1, source = "test fixture" }',
       "volume = 10.0")],
     ["[parameters] volume must be a table", "got 10.0"]),
    ("initial condition reads a state",
     [('initial = "baseline"', 'initial = "central"')],
     ["[states.circulating", "unknown symbol 'central'",
      "this formula may use parameters, covariates and derived quantities of those"]),
    ("initial condition reads a state-dependent derived quantity",
     [('initial = "baseline"', 'initial = "concentration"')],
     ["[states.circulating.initial]", "unknown symbol 'concentration'"]),
    ("initial condition reads time",
     [('initial = "baseline"', 'initial = "baseline + t"')],
     ["[states.circulating.initial]", "unknown symbol 't'", "not states or time"]),
    ("formula with refused syntax",
     [('circulating = "elimination_rate', 'circulating = "x.real + elimination_rate')],
     ["[odes.circulating]", "Attribute is not allowed", "x.real"]),
    ("dose target for unknown state",
     [('state = "central"', 'state = "centrl"')],
     ["[doses.drug]", "dose target enters unknown state 'centrl'", "did you mean 'central'"]),
    ("bad route",
     [('routes = ["bolus", "infusion"]', 'routes = ["bolus", "iv"]')],
     ["[doses.drug]", "routes must be a list of 'bolus' and/or 'infusion'", "'iv'"]),
    ("no route",
     [('routes = ["bolus", "infusion"]', "routes = []")],
     ["[doses.drug]", "routes must be a list"]),
    ("dose lag reads a state",
     [('amount_unit = "mg"', 'amount_unit = "mg"\nlag = "central"')],
     ["[doses.drug.lag]", "unknown symbol 'central'", "parameters and covariates only"]),
    ("bad time unit",
     [('time_unit = "h"', 'time_unit = "weeks"')],
     ["[model]", "time_unit must be one of", "'weeks'"]),
    ("missing states table",
     [('[states.central]\nunit = "mg"\ninitial = 0\n\n[states.circulating]\n'
       'unit = "10^9/L"\ninitial = "baseline"\n', "")],
     ["[states] is required"]),
]


#: cases that once gave confusing messages
MESSAGE_CASES = [
    pytest.param([("[model]\n", "[model]\nnonsense = 1\n")],
                 ["[model]: unknown field 'nonsense'"], id="unknown field in [model]"),
    pytest.param([('routes = ["bolus", "infusion"]', 'routes = "bolus"')],
                 ["[doses.drug] routes must be a list", "got 'bolus'"], id="routes given as a string"),
]


@pytest.mark.parametrize("replacements, fragments", [
    *(pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES), *MESSAGE_CASES])
def test_model_file_errors_name_file_section_and_text(replacements, fragments):
    assert_mentions(parse_error(mutate(*replacements)), *fragments)


def test_invalid_toml_reports_tomllib_message_with_line():
    text = mutate(('initial = "baseline"', 'initial = "baseline'))
    line = text.splitlines().index('initial = "baseline') + 1  # 1-based line of the typo
    with pytest.raises(tomllib.TOMLDecodeError) as reference:
        tomllib.loads(text)
    message = parse_error(text)
    assert_mentions(message, "not valid TOML", f"line {line}", str(reference.value))


#: section -> (unique anchor in MINI, text that declares {name} in that section before it)
DECLARATIONS = {
    "parameters": ("[parameters]\n", "[parameters]\n{name} = " + EXTRA_PARAMETER + "\n"),
    "states": ("[states.central]\n", '[states.{name}]\nunit = "mg"\n\n[states.central]\n'),
    "derived": ("[derived]\n", '[derived]\n{name} = "1"\n'),
    "outputs": ("[outputs.platelets]\n",
                '[outputs.{name}]\nexpression = "central"\nunit = "mg"\n\n'
                '[outputs.platelets]\n'),
}


def declare(section: str, name: str) -> str:
    """MINI with one more entry called ``name`` in ``section``."""
    anchor, new = DECLARATIONS[section]
    return mutate((anchor, new.replace("{name}", name)))


def test_declare_helper_adds_a_valid_entry():
    # guards the tests below: with an ordinary name the added entries parse
    for section in DECLARATIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModelWarning)  # the extra parameter is unused
            text = declare(section, "extra")
            if section == "states":  # a state needs an ODE
                text = text.replace("[odes]\n", '[odes]\nextra = "0"\n')
            parse_model(text, path=PATH)


@pytest.mark.parametrize("section", sorted(DECLARATIONS))
@pytest.mark.parametrize("name", ["t", "exp", "max", "_x", "__class__"])
def test_reserved_names_are_refused(section, name):
    message = parse_error(declare(section, name))
    assert_mentions(message, f"[{section}]", f"the name {name!r} is reserved", repr(name))


# "\ufb01x" is the ligature fi + x, which Python folds (NFKC) to the identifier "fix": two
# distinct names in a file could become one variable in generated code.
@pytest.mark.parametrize("name", ["if", "lambda", "1x", "caf\u00e9", "\ufb01x", "x y"])
def test_names_must_be_identifiers_and_not_keywords(name):
    message = parse_error(declare("parameters", f'"{name}"'))  # quoted: any TOML key
    assert_mentions(message, "[parameters]", "must be an ASCII identifier", repr(name))


def test_non_numeric_bound_names_file_and_section():
    message = parse_error(mutate(("lower = 0.0, upper", 'lower = "zero", upper')))
    assert_mentions(message, "[parameters.elimination_rate] lower must be a number",
                    "'zero'")


COVARIATE = '[covariates.body_weight]\nunit = "kg"\ndescription = "body weight"\ndefault = 70\n'


def test_covariate_without_bounds_is_accepted():
    model = parse_quietly(mutate(("[states.central]\n", COVARIATE + "\n[states.central]\n")))
    assert model.covariates["body_weight"].default == 70.0  # test fixture
    assert model.covariates["body_weight"].lower == -math.inf


def test_covariate_with_bounds_is_accepted():
    text = mutate(("[states.central]\n",
                   COVARIATE + "lower = 1\nupper = 400\n\n[states.central]\n"))
    covariate = parse_quietly(text).covariates["body_weight"]
    assert (covariate.default, covariate.lower, covariate.upper) == (70.0, 1.0, 400.0)  # fixture


@pytest.mark.parametrize("name, expression", [("central", "central"),
                                              ("concentration", "concentration")])
def test_output_may_share_the_name_of_a_state_or_derived_quantity(name, expression):
    text = mutate(("[outputs.platelets]\n", f'[outputs.{name}]\nexpression = "{expression}"\n'
                   f'unit = "mg"\n\n[outputs.platelets]\n'))
    assert parse_quietly(text).output_names == [name, "platelets"]


def test_unused_parameter_warns_naming_it():
    text = mutate(("[parameters]\n", f"[parameters]\nunused_gain = {EXTRA_PARAMETER}\n"))
    with pytest.warns(ModelWarning, match=r"mini\.toml: parameter\(s\) unused_gain are not used"):
        model = parse_model(text, path=PATH)
    assert "unused_gain" in model.parameter_names


def test_parameter_read_only_by_a_dose_modifier_is_used():
    text = mutate(("[parameters]\n", f"[parameters]\nf_oral = {EXTRA_PARAMETER}\n"),
                  ('amount_unit = "mg"', 'amount_unit = "mg"\nbioavailability = "f_oral"'))
    assert "f_oral" in parse_quietly(text).parameter_names  # no ModelWarning raised


# ----------------------------------------------------------------- derived quantities
DERIVED_ORDER = """\
[model]
name = "derived_order"
description = "derived quantities written before what they read"
time_unit = "day"

[parameters]
k = { value = 0.5, unit = "1/day", lower = 0, source = "test fixture" }

[states.x]
unit = "mg"
initial = "c"

[derived]
c = "b - 2"
b = "a * 2"
a = "k + 1"

[odes]
x = "b"

[outputs.x_out]
expression = "x"
unit = "mg"
[outputs.c_out]
expression = "c"
unit = "mg"
"""


def test_derived_quantities_are_sorted_by_dependency():
    model = parse_quietly(DERIVED_ORDER)
    assert [name for name, _ in model.derived] == ["a", "b", "c"]


def test_derived_quantities_in_any_file_order_simulate_correctly():
    model = parse_quietly(DERIVED_ORDER)
    times = np.array([0.0, 1.0, 2.0])  # days, test input
    result = plateletpd.simulate(model, times=times)
    assert result.ok
    # hand-computed: a = 1.5, b = 3, c = 1; x(0) = c = 1 and dx/dt = b = 3 -> x = 1 + 3 t
    np.testing.assert_allclose(result["x_out"], 1.0 + 3.0 * times, rtol=1e-10)
    np.testing.assert_allclose(result["c_out"], [1.0, 1.0, 1.0], rtol=1e-12)


# --------------------------------------------------------------------- strict updates
# (model source, parameter, valid new value, out-of-bounds value, near-miss name, hint)
UPDATE_CASES = [
    pytest.param(lambda: load_model("friberg_platelets"), "gamma", 0.3, 99.0, "gama",
                 "gamma", id="friberg_platelets"),  # friberg_platelets.toml
    pytest.param(parse_quietly, "elimination_rate", 0.7, 20.0, "elimnation_rate",
                 "elimination_rate", id="mini"),  # test fixture bounds [0, 10]
]


@pytest.mark.parametrize("make, name, valid, outside, typo, hint", UPDATE_CASES)
def test_with_parameters_refuses_unknown_names_with_a_hint(make, name, valid, outside, typo,
                                                           hint):
    model = make()
    with pytest.raises(ParameterError) as caught:
        model.with_parameters(**{typo: 1.0})
    assert f"has no parameter {typo!r}" in str(caught.value)
    assert f"did you mean {hint!r}" in str(caught.value)
    with pytest.raises(ParameterError, match="has no parameter 'nonexistent'") as caught:
        model.with_parameters(nonexistent=1)
    assert ", ".join(model.parameter_names) in str(caught.value)  # lists the parameters


@pytest.mark.parametrize("make, name, valid, outside, typo, hint", UPDATE_CASES)
def test_with_parameters_refuses_out_of_bounds_values(make, name, valid, outside, typo, hint):
    model = make()
    with pytest.raises(ParameterError, match=rf"parameter '{name}'.*outside its bounds"):
        model.with_parameters(**{name: outside})
    assert model.parameters[name].value != outside  # the model itself is unchanged


@pytest.mark.parametrize("make, name, valid, outside, typo, hint", UPDATE_CASES)
def test_valid_update_changes_value_and_hash_but_not_structure(make, name, valid, outside, typo,
                                                               hint):
    model = make()
    updated = model.with_parameters(**{name: valid})
    assert updated.parameters[name].value == valid
    assert model.parameters[name].value != valid
    assert updated.structure_hash == model.structure_hash
    assert updated.hash != model.hash
    assert model.with_parameters({name: valid}).hash == updated.hash  # mapping form, same


def test_covariate_passed_as_parameter_is_pointed_to_covariates(one_compartment):
    with pytest.raises(ParameterError, match="no parameter 'body_weight' .it is a covariate"):
        one_compartment.with_parameters(body_weight=70.0)  # test input


# ----------------------------------------------------------------------- bundled models
def test_bundled_model_loads_by_name():
    model = load_model("friberg_platelets")
    assert model.name == "friberg_platelets"
    assert model.path == str(bundled_models_dir() / "friberg_platelets.toml")
    assert model.state_names == ["depot", "central", "proliferating", "transit1", "transit2",
                                 "transit3", "circulating"]
    assert "gamma" in model.parameter_names and "circ0" in model.parameter_names
    assert "platelets" in model.output_names
    assert model.parameters["gamma"].unit == "1"  # friberg_platelets.toml
    assert model.parameters["gamma"].source.strip()


def test_list_models_finds_the_bundled_friberg_model():
    models = plateletpd.list_models()
    assert "friberg_platelets" in models
    assert "Friberg" in models["friberg_platelets"]


@pytest.mark.parametrize("name", sorted(plateletpd.list_models()))
def test_every_bundled_parameter_has_unit_and_source(name):
    model = load_model(name)
    assert model.parameters
    for parameter in model.parameters.values():
        assert parameter.unit.strip(), parameter.name
        assert parameter.source.strip(), parameter.name
        assert parameter.lower <= parameter.value <= parameter.upper, parameter.name


def test_unknown_bundled_name_lists_bundled_models():
    with pytest.raises(ModelFileError) as caught:
        load_model("no_such_model")
    message = str(caught.value)
    assert "no bundled model named 'no_such_model'" in message
    for name in plateletpd.list_models():
        assert name in message


def test_near_miss_bundled_name_gets_a_hint():
    with pytest.raises(ModelFileError, match="did you mean 'friberg_platelets'"):
        load_model("friberg_platelet")


def test_missing_model_file_path_is_an_error(tmp_path):
    missing = tmp_path / "absent.toml"
    with pytest.raises(ModelFileError, match=re.escape(str(missing))):
        load_model(missing)


def test_load_model_reads_a_file_and_keeps_its_path(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(MINI, encoding="utf-8")
    model = load_model(path)
    assert model.path == str(path)
    assert model.text == MINI
    assert load_model(model) is model  # a Model passes through


# ------------------------------------------------------------------- generated source
def test_source_shows_glossary_and_rhs():
    model = parse_quietly()
    source = model.source
    assert "# glossary" in source
    assert "def rhs(" in source
    assert "#   p[1] volume 'L'" in source  # second parameter of the test fixture
    assert "#   y[1] circulating '10^9/L'" in source  # second state of the test fixture
    assert "d_concentration = (s_central / p_volume)" in source


def test_bundled_source_shows_glossary_and_rhs():
    source = load_model("friberg_platelets").source
    assert "# glossary" in source and "def rhs(" in source
    assert "gamma" in source
