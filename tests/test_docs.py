"""The documentation builds (mkdocs, strict: a broken link or a page missing from the nav fails)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build(tmp_path):
    mkdocs = shutil.which('mkdocs', path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.fail('mkdocs is missing: it is in the dev extras')
    result = subprocess.run([mkdocs, 'build', '--strict', '-q', '-d', str(tmp_path / 'site')], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'site' / 'user' / 'engine' / 'index.html').exists()
