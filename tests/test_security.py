"""Model files are data, never code (issue 14, deliverable 1).

A model file's free text (names, descriptions, units, sources, references, aliases) must
reach generated source only as an escaped literal, and formulas only through the
whitelisted expression emitter. The properties tested here:

* the generated kernel's syntax tree (what runs) is the same whatever the free text says:
  only comments differ, and ``ast`` drops comments;
* executing the generated module's top level creates no marker file;
* the C source for deSolve, with its comments removed by a C lexer, is the same too;
* the second line of defence (``codegen.check_generated``) refuses a kernel whose top
  level is not generator output, tested by disabling the escaping;
* property-based fuzzing (hypothesis) of free text, formulas, regimens and whole model
  files: a clear PlateletPDError or a valid result, never code run, never another
  exception.

Numbers in this file are test-fixture values (made up, only internally consistent).
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plateletpd as pp
from plateletpd import PlateletPDError, parse_model
from plateletpd.model import codegen
from plateletpd.model.expressions import FUNCTIONS, parse_expression

MARKER = "plateletpd_pwned_marker"

#: Payloads that end a Python comment (newline, carriage return, the Unicode line and
#: paragraph separators, vertical tab, form feed, NEL), end a C comment (``*/``), close a
#: string literal (quotes) or escape (backslash), each followed by code that would
#: create the marker file if it ran.
CODE = f"import os; os.system('touch {MARKER}'); open('{MARKER}', 'w')"
PAYLOADS = [
    f"x\n{CODE}", f"x\r{CODE}", f"x\r\n{CODE}", f"x\u2028{CODE}", f"x\u2029{CODE}",
    f"x\x0b{CODE}", f"x\x0c{CODE}", f"x\x85{CODE}", f"*/ system(\"touch {MARKER}\"); /*",
    f"'''\n{CODE}\n'''", f'"""\n{CODE}\n"""', f"\\\n{CODE}", f"# {CODE}", f"\x00{CODE}",
    f"\ufeff\n{CODE}", "\u00e9\u4e2d\U0001f600 unicode text",
]

FIELDS = ["model_name", "model_description", "reference", "parameter_unit",
          "parameter_description", "parameter_source", "covariate_unit",
          "covariate_description", "covariate_source", "state_unit", "state_description",
          "output_unit", "output_description", "dose_description", "alias"]

TEMPLATE = """\
[model]
name = {model_name}
description = {model_description}
time_unit = "h"
references = [{reference}]

[parameters]
elimination_rate = {{ value = 0.5, unit = {parameter_unit}, lower = 0.0, upper = 10.0, description = {parameter_description}, source = {parameter_source} }}
baseline = {{ value = 100.0, unit = "10^9/L", lower = 0.0, source = "test fixture" }}

[covariates.body_weight]
unit = {covariate_unit}
description = {covariate_description}
source = {covariate_source}
default = 70.0
lower = 1.0
upper = 400.0

[states.central]
unit = {state_unit}
description = {state_description}
initial = 0

[states.circulating]
unit = "10^9/L"
initial = "baseline"

[odes]
central = "-elimination_rate * central"
circulating = "elimination_rate * (baseline - circulating) - central / body_weight"

[outputs.platelets]
expression = "circulating"
unit = {output_unit}
description = {output_description}

[doses.drug]
state = "central"
amount_unit = "mg"
routes = ["bolus", "infusion"]
description = {dose_description}
aliases = [{alias}]
"""

CLEAN = {field: "plain" for field in FIELDS}
CLEAN["alias"] = "medicine"


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and every character outside
    printable ASCII escaped, so any payload survives into the parsed value."""
    out = []
    for character in text:
        code = ord(character)
        if character in '"\\':
            out.append("\\" + character)
        elif 0x20 <= code < 0x7F:
            out.append(character)
        else:
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
    return '"' + "".join(out) + '"'


def model_text(values: dict[str, str]) -> str:
    return TEMPLATE.format(**{field: toml_string(values[field]) for field in FIELDS})


def parse(values: dict[str, str]):
    """The model, or None when the file is refused with a clear error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return parse_model(model_text(values), path="attack.toml")
        except PlateletPDError:
            return None


CLEAN_MODEL = parse(CLEAN)


def strip_c_comments(source: str) -> str:
    """C source with comments removed, by a lexer that knows string and char literals."""
    pattern = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|/\*.*?\*/|//[^\n]*', re.S)
    return pattern.sub(lambda m: " " if m.group().startswith("/") else m.group(), source)


def assert_program_unchanged(model, folder: Path) -> None:
    """The model's generated code is the clean model's, and its top level runs no code."""
    assert ast.dump(ast.parse(model.source)) == ast.dump(ast.parse(CLEAN_MODEL.source))
    assert strip_c_comments(model.c_source()) == strip_c_comments(CLEAN_MODEL.c_source())
    here, path = os.getcwd(), folder / "generated_check.py"
    path.write_text(model.source)  # numba's on-disk cache wants a real source file
    os.chdir(folder)
    try:  # njit compiles lazily: this runs the module's top level only
        exec(compile(model.source, str(path), "exec"), {"__name__": "generated_check"})
    finally:
        os.chdir(here)
    assert not (folder / MARKER).exists()


def test_clean_template_parses():
    # guards every test below: with ordinary text the template is a valid model
    assert CLEAN_MODEL is not None
    assert CLEAN_MODEL.state_names == ["central", "circulating"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_every_free_text_field_with_every_payload_runs_no_code(field, payload, tmp_path):
    model = parse({**CLEAN, field: payload})
    if model is not None:  # refused with a clear error is also safe
        assert_program_unchanged(model, tmp_path)


def test_free_text_is_kept_verbatim_in_the_model_and_escaped_in_the_source():
    payload = PAYLOADS[0]
    model = parse({**CLEAN, "parameter_description": payload})
    assert model.parameters["elimination_rate"].description == payload  # data kept as given
    assert ascii(payload) in model.source  # shown as a literal
    assert "\nimport os" not in model.source


@pytest.mark.slow
def test_payloads_in_every_field_at_once_simulate_like_the_clean_model(tmp_path, monkeypatch):
    # end to end through the numba kernel: compile, load, integrate (one compile, ~20 s)
    values = {field: PAYLOADS[i % (len(PAYLOADS) - 1)] for i, field in enumerate(FIELDS)}
    values["alias"] = "medicine"  # aliases are regimen labels: keep one usable
    model = parse(values)
    assert model is not None
    monkeypatch.chdir(tmp_path)
    attacked = pp.simulate(model, "drug 5 mg", days=2)
    clean = pp.simulate(CLEAN_MODEL, "drug 5 mg", days=2)
    assert not (tmp_path / MARKER).exists()
    assert attacked.ok and clean.ok
    np.testing.assert_array_equal(attacked["platelets"], clean["platelets"])


def test_second_line_of_defence_refuses_unescaped_text(monkeypatch, tmp_path):
    # a regression in the escaping (comment_text returning the raw text) must not run code:
    # check_generated refuses the kernel before anything loads it
    monkeypatch.setattr(codegen, "comment_text", lambda text: str(text))
    model = parse({**CLEAN, "state_description": PAYLOADS[0]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pp.ExpressionError, match="not generator output"):
        _ = model.source
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("statement", [
    "import os", "from subprocess import run", "print('x')", "x = __import__('os')",
    "class A: pass", "if True: pass", "def f(): pass", "x = (lambda: 1)()",
    "x = open('f')", "with open('f') as h: pass", "@staticmethod\ndef f(): pass"])
def test_check_generated_refuses_foreign_top_level_statements(statement):
    source = CLEAN_MODEL.source + "\n" + statement + "\n"
    with pytest.raises(pp.ExpressionError, match="not generator output"):
        codegen.check_generated(source)


def test_check_generated_accepts_every_bundled_model():
    for name in pp.list_models():
        codegen.check_generated(pp.load_model(name).source)  # raises if not


# ------------------------------------------------------------------ property-based fuzzing
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

#: Fragments an attacker would combine: line breaks of every kind, comment and string
#: delimiters, and code.
FRAGMENTS = ["\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x85", "#", "*/", "/*", "'",
             '"', '"""', "'''", "\\", "\x00", CODE, "__import__('os')", "exec(", ")", "\t"]
adversarial_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)),
                            max_size=6).map("".join)


@FUZZ
@given(values=st.fixed_dictionaries({field: adversarial_text for field in FIELDS}))
def test_fuzzed_free_text_never_changes_the_program(values, tmp_path_factory):
    model = parse(values)
    if model is not None:
        assert_program_unchanged(model, tmp_path_factory.mktemp("fuzz"))


TOKENS = ["x", "y", "t", "1", "0", "2.5", "1e400", "(", ")", "+", "-", "*", "/", "**", ",",
          "exp", "log", "sqrt", "min", "max", "abs", "if", "else", "and", "or", "not", "<",
          "==", ".", "__class__", "__import__", "os", "system", "'rm'", "lambda", ":", "[",
          "]", "{", "}", "=", ":=", "\n", ";", "#", "f'{x}'", "yield", "await", "import"]
formula = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(" ".join)
ALLOWED_CALLS = {python for _, python, _ in FUNCTIONS.values()}


@FUZZ
@given(text=st.one_of(formula, st.text(max_size=40)))
def test_fuzzed_formulas_are_refused_or_emit_only_whitelisted_code(text):
    try:
        expression = parse_expression(text)
    except PlateletPDError:
        return
    emitted = expression.to_python(lambda name: "v_" + name)
    tree = ast.parse(emitted, mode="eval")  # emitted code is one expression
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.Attribute, ast.Subscript, ast.Lambda, ast.NamedExpr,
                                     ast.JoinedStr)) or ast.unparse(node).startswith("math.")
        if isinstance(node, ast.Call):
            assert ast.unparse(node.func) in ALLOWED_CALLS
        if isinstance(node, ast.Name) and node.id != "math":
            assert node.id.startswith("v_")
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


@FUZZ
@given(text=st.one_of(formula, st.text(max_size=40)))
def test_fuzzed_formulas_in_a_model_file_give_a_clear_error_or_a_model(text, tmp_path_factory):
    source = model_text(CLEAN).replace('central = "-elimination_rate * central"',
                                       f"central = {toml_string(text)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = parse_model(source, path="attack.toml")
        except PlateletPDError:
            return
    assert ast.parse(model.source)  # valid Python, checked by check_generated


REGIMEN_TOKENS = ["drug", "medicine", "cytotoxic", "5", "0", "-1", "1e9", "nan", "mg", "ug/kg",
                  "U", "iv", "po", "sc", "qd", "bid", "q2d", "d1-14", "d1-3,5", "x3", "over",
                  "2h", "+", "d0", "d1-1000000", "x99999999", ";", "__import__('os')", "\n"]
regimen_text = st.lists(st.sampled_from(REGIMEN_TOKENS), min_size=1, max_size=9).map(" ".join)


@FUZZ
@given(text=st.one_of(regimen_text, st.text(max_size=30)))
def test_fuzzed_regimens_give_a_clear_error_or_a_schedule(text):
    try:
        regimen = pp.Regimen.parse(text)
        schedule = pp.dosing.expand(regimen, CLEAN_MODEL.dose_targets)
    except PlateletPDError:
        return
    assert np.all(np.isfinite(schedule.amounts({"body_weight": 70.0})))


@FUZZ
@given(data=st.data())
def test_fuzzed_model_file_text_gives_a_clear_error_or_a_model(data):
    # random edits of a valid file: delete a slice, insert an adversarial fragment
    text = model_text(CLEAN)
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        stop = data.draw(st.integers(start, min(len(text), start + 30)))
        text = text[:start] + data.draw(st.one_of(adversarial_text, st.sampled_from(TOKENS))) \
            + text[stop:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = parse_model(text, path="attack.toml")
        except PlateletPDError:
            return
    assert ast.parse(model.source)
