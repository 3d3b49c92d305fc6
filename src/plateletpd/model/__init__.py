"""Models as data: the expression language, model files and the code generated from them.

* :mod:`~plateletpd.model.expressions`: the formula language (a checked syntax tree);
* :mod:`~plateletpd.model.definition`: model files (TOML) -> a validated :class:`Model`;
* :mod:`~plateletpd.model.codegen`: kernel source (Python for numba, C for deSolve);
* :mod:`~plateletpd.model.library`: the bundled fits (fitted parameter sets).

Nothing here compiles or integrates: that is :mod:`plateletpd.numerics`.
"""

from plateletpd.model.definition import (Model, bundled_models_dir, list_models, load_model,
                                         parse_model)

__all__ = ["Model", "bundled_models_dir", "list_models", "load_model", "parse_model"]
