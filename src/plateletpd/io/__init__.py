"""Input and output: atomic files and folders, strict JSON, TOML inputs, provenance, data.

* :mod:`~plateletpd.io.files`: atomic writes, whole-folder outputs with a manifest;
* :mod:`~plateletpd.io.inputs`: TOML reading, what is wrong with a number;
* :mod:`~plateletpd.io.schema`: one schema engine for every TOML input, line-numbered errors;
* :mod:`~plateletpd.io.provenance`: versions and provenance records;
* :mod:`~plateletpd.io.outcomes`: the published outcomes table (calibration data).
"""
