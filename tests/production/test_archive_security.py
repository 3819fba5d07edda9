"""Security of what leaves the production profile (issue #13, item 7): an exported archive holds no database
password, no SSH private key and no POTCAR text; the database role's password was generated, not a default."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.production

DEFAULT_PASSWORDS = {'', 'aiida', 'postgres', 'password', 'guest', 'sseff'}
# Words every VASP POTCAR holds (its header and PSCTR block, e.g. `TITEL  = PAW_PBE Li_sv 10Sep2004`): POTCAR text
POTCAR_MARKERS = (b'TITEL', b'VRHFIN', b'PSCTR', b'PAW_PBE', b'PAW_GGA')


def _private_key_lines(path: Path) -> list[bytes]:
    """The base64 body lines of an OpenSSH private key file (its header and footer are public words)."""
    lines = path.read_bytes().splitlines()
    return [line for line in lines if line and not line.startswith(b'-----')]


def test_database_password_is_generated(aiida_profile):
    password = aiida_profile.storage_config['database_password']
    assert password not in DEFAULT_PASSWORDS and len(password) >= 24
    assert aiida_profile.storage_config['database_username'] not in ('aiida', 'postgres')


def test_exported_archive_holds_no_secret(aiida_profile, label_run, remote_computer, tmp_path):
    """Export the labelling run (its inputs, calls and outputs, the computer and code) and read every member of the
    archive: neither the password, nor any line of the private key, nor POTCAR text is there. The word `POTCAR` is
    looked for too, except in the plugin's own source files, which AiiDA stores with each process node (the
    labelling module names POTCAR families in its VASP validator)."""
    from aiida.tools.archive import create_archive

    assert label_run.is_finished_ok, label_run.exit_message
    archive = tmp_path / 'label.aiida'
    create_archive([label_run], filename=archive)

    key_file = Path(remote_computer.get_authinfo(label_run.user).get_auth_params()['key_filename'])
    secrets = {'database password': aiida_profile.storage_config['database_password'].encode()}
    secrets.update({f'private key line {i}': line for i, line in enumerate(_private_key_lines(key_file))})
    secrets.update({f'POTCAR text ({marker.decode()})': marker for marker in POTCAR_MARKERS})
    assert len(secrets) > len(POTCAR_MARKERS) + 2  # the key file was read
    import aiida_sseff

    package = Path(aiida_sseff.__file__).parent
    own_sources = {path.read_bytes() for path in package.rglob('*.py')}

    with zipfile.ZipFile(archive) as content:
        members = content.namelist()
        assert any(name.endswith('.sqlite') or 'db' in name for name in members)  # the database is inside
        found = {}
        for name in members:
            data = content.read(name)
            for what, secret in secrets.items():
                if secret in data:
                    found.setdefault(what, []).append(name)
            if b'POTCAR' in data and data not in own_sources:
                found.setdefault('the word POTCAR', []).append(name)
    assert not found, f'secrets in the archive: {found}'
