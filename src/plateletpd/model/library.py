"""The library of bundled fits: fitted parameter sets saved as folders (``params.json``).

A fit folder is written by :func:`plateletpd.inference.fitting.run_fit`; simulations and
trials read its values from here, so they never depend on the fitting machinery.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from plateletpd.errors import FitFileError, closest
from plateletpd.model.definition import load_model


def bundled_fits_dir() -> Path:
    """Folder of the bundled fits (inside the wheel, or fits/ in a source tree)."""
    from plateletpd.io.files import bundled_folder

    return bundled_folder("fits")


def _fit_folder(name_or_path: str | Path) -> Path:
    """A fit folder given as a path holding params.json, else a bundled fit's folder."""
    folder = Path(name_or_path)
    return folder if (folder / "params.json").is_file() else bundled_fits_dir() / str(name_or_path)


def load_fitted_parameters(name_or_path: str | Path) -> tuple[str, dict[str, float]]:
    """(model name, fitted model-parameter values) of a bundled fit name or a fit folder.

    Study-level parameters (those standing in for a model parameter in some arms) are left
    out: they describe one study's population, not the model.
    """
    record = load_fit_record(name_or_path)
    model_name = record["provenance"]["model"]["name"]
    model = load_model(model_name)
    values = {name: entry["value"] for name, entry in record["parameters"].items()
              if name in model.parameters}
    # a record that keeps every model value the fit ran with (a fit on a base fit's values:
    # [fit] base) gives them all, the estimates among them
    values = {**{name: float(value) for name, value in record.get("model_values", {}).items()
                 if name in model.parameters}, **values}
    return model_name, values


def chosen_fit(model_name: str, choice: str | Path) -> str | Path | None:
    """The fit a ``fit`` setting names for ``model_name``: ``"default"`` its bundled fit
    (None when it has none), ``"none"`` None, anything else the fit name or folder given."""
    if str(choice) == "none":
        return None
    return default_fit(model_name) if str(choice) == "default" else choice


def fitted_values(model_name: str, choice: str | Path) -> tuple[str | None, dict[str, float]]:
    """(the fit's name, its model values) for a ``fit`` setting (:func:`chosen_fit`);
    ``(None, {})`` when it names none. The one place simulations, trials, fits and the
    command line turn a fit setting into values.

    Raises:
        FitFileError: no such fit, or a fit made with another model."""
    name = chosen_fit(model_name, choice)
    if name is None:
        return None, {}
    fitted_model, values = load_fitted_parameters(name)
    if fitted_model != model_name:
        raise FitFileError(f"fit {str(name)!r} was made with model {fitted_model!r}, not "
                           f"{model_name!r}; give that model, or the fit \"default\" for "
                           f"the bundled fit of {model_name!r}")
    return str(name), values


def fit_record_hash(name_or_path: str | Path) -> str | None:
    """SHA-256 of a fit's ``params.json`` (a bundled fit name or a fit folder), so a
    result's record names the exact fit values it ran on, not only the fit's name (a fit
    folder can be rewritten under the same name); None when there is no such record."""
    import hashlib

    path = _fit_folder(name_or_path) / "params.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def fit_name(name_or_path: str | Path) -> str:
    """A fit as records name it: a folder holding a bundled fit (its name and the same
    ``params.json``: the bundled folder itself, the source tree's ``fits/X`` beside an
    installed copy, or a copy) is that fit's name, so ``--fit fits/X`` and ``--fit X`` are
    the same fit; anything else as given."""
    folder = Path(name_or_path)
    given, bundled = folder / "params.json", bundled_fits_dir() / folder.name / "params.json"
    if given.is_file() and bundled.is_file() and given.read_bytes() == bundled.read_bytes():
        return folder.name
    return str(name_or_path)


def load_fit_record(name_or_path: str | Path) -> dict:
    """The whole ``params.json`` of a bundled fit name or a fit folder: every varied
    parameter with its value, standard error, bounds and correlations, the objective, the
    profiles and the provenance (what :mod:`plateletpd.study.uncertainty` draws from)."""
    path = _fit_folder(name_or_path) / "params.json"
    if not path.is_file():
        names = sorted(p.parent.name for p in bundled_fits_dir().glob("*/params.json"))
        raise FitFileError(f"no fit at {name_or_path!r}"
                           f"{closest(str(name_or_path), ['default', 'none', *names])}; "
                           f"\"default\" (the model's bundled fit), \"none\" (the model "
                           f"file's values), a bundled fit ({', '.join(names) or 'none'}) or "
                           f"a folder holding params.json")
    stat = path.stat()
    # one read per file version: a trial run asks for its fit's record several times (the
    # --fit check, the values, the population, the interval note); a copy each time, so
    # no caller's edit reaches another
    return copy.deepcopy(_read_fit_record(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _read_fit_record(path: str, modified_ns: int, size: int) -> dict:
    """A checked ``params.json``, cached by its path, modification time and size (so a fit
    written again is read again)."""
    import json

    try:
        record = json.loads(Path(path).read_text())
        if not (isinstance(record["provenance"]["model"]["name"], str)
                and isinstance(record["parameters"], dict)):
            raise TypeError("model name or parameters of the wrong type")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise FitFileError(f"{path} is not a fit record plateletpd wrote ({error!r}); "
                           f"write it with plateletpd fit CONFIG --out FOLDER") from None
    return record


def fit_population(name_or_path: str | Path) -> dict:
    """The ``[population]`` table (``cv``, ``correlations``, ``transforms``) of a fit's
    configuration, kept as ``config.toml`` in its folder: the between-patient variability
    the fit's virtual patients had, with the CVs the fit estimated (``between_patient`` in
    its ``params.json``) in place of their start values. ``{}`` when the folder keeps no
    configuration or the configuration has no ``[population]``. Read as data (TOML), never
    run."""
    import tomllib

    path = _fit_folder(name_or_path) / "config.toml"
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            population = tomllib.load(handle).get("population", {})
    except tomllib.TOMLDecodeError as error:
        raise FitFileError(f"{path} is not a readable fit configuration ({error}); fix it or "
                           f"remove it from the fit folder") from None
    table = {key: dict(population[key]) for key in ("cv", "correlations", "transforms")
             if isinstance(population.get(key), dict)}
    # CVs the fit estimated ([between_patient]) replace their start values
    record = path.with_name("params.json")
    estimated = load_fit_record(name_or_path).get("between_patient") or {} \
        if record.is_file() else {}
    for name, entry in estimated.items():
        table.setdefault("cv", {})[name] = entry["cv"]
    return table


#: the fit parameter of a fit's estimated between-cycle CV of exposure ([between_cycle]):
#: one name for the fit that writes it and the trials that read it
BETWEEN_CYCLE_PARAMETER = "between_cycle_cv"


def fit_between_cycle_cv(name_or_path: str | Path) -> float | None:
    """The between-cycle CV of chemotherapy exposure a fit was made with as a fit parameter
    (``[between_cycle]``: ``between_cycle_cv`` in its ``params.json``), or None when the
    fit has none (each course trial then keeps its own ``between_cycle_cv``)."""
    entry = load_fit_record(name_or_path).get("parameters", {}).get(BETWEEN_CYCLE_PARAMETER)
    return None if entry is None else float(entry["value"])


def fit_course_cycle_days(name_or_path: str | Path) -> tuple[float, ...]:
    """The cycle lengths (days) of the chemotherapy courses of a fit's ``[[trials]]``
    (their files' ``[chemotherapy] cycle_days``, every length of a per-cycle list, 21 when
    unstated), sorted; empty when the
    fit ran none or their files cannot be found (a trial file is looked for as recorded,
    from the folder above the fit's ``fits`` folder, then among the bundled trials)."""
    import tomllib

    from plateletpd.io.files import recorded_trial_file

    root = _fit_folder(name_or_path).parent.parent  # the tree the fit was run from
    days = set()
    for entry in load_fit_record(name_or_path).get("trials", []):
        path = recorded_trial_file(entry.get("file", ""), root)
        if path is None:
            continue
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        if "chemotherapy" in document:  # a number, or a list of one per cycle
            written = document["chemotherapy"].get("cycle_days", 21.0)
            days.update(float(d) for d in (written if isinstance(written, list)
                                           else [written]))
    return tuple(sorted(days))


def fitted_rows(name_or_path: str | Path) -> set[tuple[str, str, str, int]] | None:
    """The data rows a fit was made to, as (study, arm, endpoint, line) of its
    ``predictions.csv`` (every fit folder :func:`plateletpd.inference.fitting.run_fit`
    writes has one); None when the folder keeps none (a hand-made fit folder). A
    validation suite checks its checks' roles against these."""
    import csv

    path = _fit_folder(name_or_path) / "predictions.csv"
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"study", "arm", "endpoint", "line"} <= set(reader.fieldnames or ()):
            return None
        return {(row["study"], row["arm"], row["endpoint"], int(float(row["line"])))
                for row in reader if row["line"] not in ("", "nan")}


def default_fit(model_name: str) -> str | None:
    """The bundled fit of ``model_name``, if there is one (simulation commands use it).

    A model may have more than one bundled fit: a variant made under another reading of one
    assumption is named after the fit it varies, ``<fit>_<variant>``
    (``cit_marrow_reserve_calibration_nsclc75``), so it sorts after it and is never the
    default; it is chosen by name (``--fit``, ``[trial] fit``)."""
    import json

    for path in sorted(bundled_fits_dir().glob("*/params.json")):
        try:
            if json.loads(path.read_text())["provenance"]["model"]["name"] == model_name:
                return path.parent.name
        except (OSError, KeyError, ValueError):
            continue
    return None
