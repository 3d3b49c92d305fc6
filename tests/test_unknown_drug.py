"""A drug the trial's model cannot be dosed with is named with the bundled models that have
it, not answered with a look-alike name (a blind user test, 2026-12-07: eltrombopag in an
ITP trial on `itp_thrombopoiesis` was answered "did you mean 'hetrombopag'?", a drug dosed
about ten times lower, and the test then ran hetrombopag 25-75 mg).

Properties that could fail: the message names every bundled model whose file doses the drug
(read from the files here, independently) and no look-alike; a drug no bundled model has
keeps the model's own list with its closest name; both stop the CLI with exit status 2.
"""

import tomllib
from pathlib import Path

from plateletpd.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _models_with(drug: str) -> list[str]:
    found = []
    for path in sorted((ROOT / "models").glob("*.toml")):
        document = tomllib.loads(path.read_text())
        for key, entry in document.get("doses", {}).items():
            if drug in [key.lower(), *(a.lower() for a in entry.get("aliases", []))]:
                found.append(document["model"]["name"])
    return found


def _itp_trial_with(tmp_path, dose: str) -> Path:
    text = (ROOT / "trials" / "itp_phase3.toml").read_text()
    assert '"hetrombopag 2.5 mg"' in text  # the case must change the real file
    path = tmp_path / "trial.toml"
    path.write_text(text.replace('"hetrombopag 2.5 mg"', f'"{dose}"', 1))
    return path


def test_a_drug_of_another_bundled_model_is_named_with_it(tmp_path, capsys):
    assert _models_with("eltrombopag") == ["cit_marrow_reserve"]  # the bundled models today
    path = _itp_trial_with(tmp_path, "eltrombopag 25 mg")
    assert main(["trial", str(path), "--n", "20", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert ("unknown drug 'eltrombopag' for model 'itp_thrombopoiesis', which can be dosed "
            "with: hetrombopag; 'eltrombopag' is a drug of the bundled model "
            "cit_marrow_reserve") in error
    assert "did you mean" not in error
    assert not (tmp_path / "out").exists()


def test_a_drug_no_bundled_model_has_keeps_the_models_list(tmp_path, capsys):
    assert _models_with("hetrombopagg") == []
    path = _itp_trial_with(tmp_path, "hetrombopagg 2.5 mg")
    assert main(["trial", str(path), "--n", "20", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "unknown drug 'hetrombopagg' (did you mean 'hetrombopag'?); this model can be " \
        "dosed with: hetrombopag" in error
