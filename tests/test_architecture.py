"""The package's architecture holds (issue 15): the layer, numba and no-cycle contracts of
.importlinter, checked by import-linter (imports inside functions count), and the layout
documented in docs/architecture.md matches the package's folders."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "plateletpd"


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_contracts_are_kept():
    run = subprocess.run(["lint-imports", "--config", str(ROOT / ".importlinter")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_architecture_doc_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    # each module's file name appears (the layer picture lists them under their folder)
    modules = sorted(path.name for path in PACKAGE.rglob("*.py") if path.name != "__init__.py")
    missing = [m for m in modules if not re.search(rf"\b{re.escape(m)}\b", text)]
    assert not missing, f"docs/architecture.md does not mention: {missing}"
