"""``aiida-sseff sample fps|series`` on files, no database: the real LLZO set and model, and generated structures.

Expected selections are recomputed by calling the analysis functions (descriptors + FPS) directly on the same files.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write
from click.testing import CliRunner

from aiida_sseff.analysis.descriptors import nep_descriptors, rdf_descriptors, untrained_nep_descriptors
from aiida_sseff.analysis.fps import farthest_point_sampling
from aiida_sseff.cli import cmd_root
from aiida_sseff.io.structures import split_xyz_frames


@pytest.fixture(scope='module')
def llzo(reference_dir):
    """Paths of the real LLZO training set (25 DFT structures) and its trained NEP model (skipped with reference_dir)."""
    return reference_dir / 'llzo' / 'nep_training' / 'train.xyz', reference_dir / 'llzo' / 'nep25_zbl.txt'


@pytest.fixture
def lif_file(tmp_path):
    """12 slightly rattled LiF cells (64 atoms) and, at index 7, one strongly rattled outlier."""
    base = bulk('LiF', 'rocksalt', a=4.03, cubic=True).repeat(2)
    structures = []
    for seed in range(12):
        atoms = base.copy()
        atoms.rattle(0.02, seed=seed)
        structures.append(atoms)
    outlier = base.copy()
    outlier.rattle(0.25, seed=99)
    structures.insert(7, outlier)
    path = tmp_path / 'lif.xyz'
    write(path, structures)
    return path


def invoke(args):
    return CliRunner().invoke(cmd_root, ['sample', *map(str, args)], catch_exceptions=False)


def run_json(args):
    result = invoke([*args, '--json'])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_fps_with_model_json_and_output(llzo, tmp_path):
    train, model = llzo
    out = tmp_path / 'picked.xyz'
    data = run_json(['fps', train, '--model', model, '-n', 5, '-o', out])
    structures = read(train, ':')
    direct = farthest_point_sampling(nep_descriptors(structures, model), n_select=5)  # GPUMDkit convention: one mean
    assert data['indices'] == direct.indices.tolist()
    assert data['min_distances'][0] is None  # first pick without a seed set: no distance
    np.testing.assert_allclose(data['min_distances'][1:], direct.min_distances[1:], rtol=1e-12)
    assert data['descriptor'] == 'nep' and data['dimension'] == 30 and data['n_candidates'] == 25
    picked = read(out, ':')
    assert len(picked) == 5
    for atoms, index in zip(picked, data['indices'], strict=True):  # written in the order picked, labels kept
        np.testing.assert_allclose(atoms.positions, structures[index].positions, atol=1e-7)
        assert atoms.get_potential_energy() == pytest.approx(structures[index].get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(atoms.get_forces(), structures[index].get_forces(), atol=1e-7)


def test_fps_with_seed_set_avoids_it(llzo, tmp_path):
    """The first 10 structures are the seed set: each is at distance 0 from itself, so none may be picked."""
    train, model = llzo
    structures = read(train, ':')
    seed = tmp_path / 'seed.xyz'
    write(seed, structures[:10])
    data = run_json(['fps', train, '--model', model, '--per-species', '-n', 5, '--seed-set', seed,
                     '-o', tmp_path / 'o.xyz'])
    assert not set(data['indices']) & set(range(10))
    assert min(data['min_distances']) > 0 and data['n_seed'] == 10 and data['dimension'] == 4 * 30
    vectors = nep_descriptors(structures, model, per_species=True)
    direct = farthest_point_sampling(vectors, n_select=5, seed_descriptors=vectors[:10])
    assert data['indices'] == direct.indices.tolist()


def test_fps_min_distance_untrained_nep_finds_the_outlier(lif_file, tmp_path):
    structures = read(lif_file, ':')
    vectors = untrained_nep_descriptors(structures, ['F', 'Li'], per_species=True)
    full = farthest_point_sampling(vectors, n_select=len(structures))
    threshold = float(full.min_distances[2] + full.min_distances[3]) / 2  # between the 3rd and 4th pick
    data = run_json(['fps', lif_file, '--descriptor', 'untrained-nep', '--per-species', '--min-distance', threshold,
                     '-o', tmp_path / 'o.xyz'])
    assert data['indices'] == full.indices[:3].tolist()
    assert 7 in data['indices']  # the strongly rattled cell is among the most distinct
    assert all(d is None or d >= threshold for d in data['min_distances'])


def test_fps_rdf_descriptor_and_species_mean(lif_file, tmp_path):
    structures = read(lif_file, ':')
    data = run_json(['fps', lif_file, '--descriptor', 'rdf', '-n', 4, '-o', tmp_path / 'o.xyz'])
    direct = farthest_point_sampling(rdf_descriptors(structures, elements=['Li', 'F']), n_select=4)
    assert data['indices'] == direct.indices.tolist() and data['dimension'] == 3 * 60
    li_only = run_json(['fps', lif_file, '--descriptor', 'untrained-nep', '--species', 'Li', '-n', 4,
                        '-o', tmp_path / 'li.xyz'])
    expected = farthest_point_sampling(untrained_nep_descriptors(structures, ['F', 'Li'], species='Li'), n_select=4)
    assert li_only['indices'] == expected.indices.tolist() and li_only['species'] == 'Li'


def test_series_on_llzo_is_nested(llzo, tmp_path):
    train, _ = llzo
    folder = tmp_path / 'series'
    data = run_json(['series', train, '--descriptor', 'untrained-nep', '--per-species', '--levels', 4, '-o', folder])
    sizes = [row['n_structures'] for row in data['levels']]
    assert sizes == [12, 6, 3, 1]  # 25 // 2, 25 // 4, 25 // 8, 25 // 16
    structures = read(train, ':')
    frames = split_xyz_frames(Path(train).read_bytes())
    previous = None
    for row in data['levels']:
        written = read(folder / f'level_{row["level"]}.xyz', ':')
        # the file's own frames, verbatim
        assert (folder / f'level_{row["level"]}.xyz').read_bytes() == b''.join(frames[i] for i in row['indices'])
        assert len(written) == row['n_structures']
        for atoms, index in zip(written, row['indices'], strict=True):
            np.testing.assert_allclose(atoms.positions, structures[index].positions, atol=1e-7)
        if previous is not None:
            assert row['indices'] == previous[:len(row['indices'])]  # a subset of its parent (its first half)
        previous = row['indices']
    text = invoke(['series', train, '--descriptor', 'rdf', '--levels', 2, '-o', tmp_path / 's2'])
    assert text.exit_code == 0 and 'level 2:      6 structures' in text.output


def test_runs_without_a_profile(lif_file, tmp_path):
    """A fresh AIIDA_PATH with no profile at all: the file commands still work."""
    executable = shutil.which('aiida-sseff', path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.fail('the aiida-sseff console script is not installed: run `pip install -e .`')
    env = {**os.environ, 'AIIDA_PATH': str(tmp_path / 'no-profile')}
    result = subprocess.run([executable, 'sample', 'fps', str(lif_file), '--descriptor', 'rdf', '-n', '2', '-o',
                             str(tmp_path / 'o.xyz')], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'selected 2 of 13 structures' in result.stdout


def unknown_element_file(tmp_path):
    path = tmp_path / 'copper.xyz'
    write(path, [bulk('Li', 'bcc', a=3.5, cubic=True), bulk('Cu', 'fcc', a=3.6, cubic=True)])
    return path


@pytest.mark.parametrize('args, message', [
    (['fps', '{tmp}/missing.xyz', '--descriptor', 'rdf', '-n', 1, '-o', '{tmp}/o.xyz'], 'missing.xyz` does not exist'),
    (['fps', '{lif}', '--descriptor', 'rdf', '-n', 30, '-o', '{tmp}/o.xyz'],
     'cannot select 30 of the 13 structures in `{lif}` (expected -n between 1 and 13)'),
    (['fps', '{lif}', '--descriptor', 'rdf', '-n', 0, '-o', '{tmp}/o.xyz'], "'--n-select': 0 is not in the range x>=1"),
    (['fps', '{lif}', '--descriptor', 'rdf', '-n', -3, '-o', '{tmp}/o.xyz'], "'--n-select': -3 is not in the range"),
    (['fps', '{lif}', '--descriptor', 'rdf', '--min-distance', -0.5, '-o', '{tmp}/o.xyz'],
     "'--min-distance': -0.5 is not in the range x>=0"),
    (['fps', '{tmp}/not_xyz.txt', '--descriptor', 'rdf', '-n', 1, '-o', '{tmp}/o.xyz'],
     'cannot read structure file `{tmp}/not_xyz.txt` as extended XYZ'),
    (['fps', '{lif}', '--model', '{tmp}/not_xyz.txt', '-n', 2, '-o', '{tmp}/o.xyz'],
     '`{tmp}/not_xyz.txt` is not a NEP model: its first line is `1 2 3`; expected a NEP model (nep.txt'),
    (['fps', '{lif}', '--descriptor', 'rdf', '-n', 2, '-o', '{lif}/o.xyz'], 'cannot write the selected structures'),
    (['series', '{lif}', '--descriptor', 'rdf', '--levels', 0, '-o', '{tmp}/s'], "'--levels': 0 is not in the range"),
    (['fps', '{lif}', '--descriptor', 'rdf', '-o', '{tmp}/o.xyz'], 'exactly one of -n/--n-select and --min-distance'),
    (['fps', '{lif}', '-n', 2, '-o', '{tmp}/o.xyz'], 'give --model nep.txt'),
    (['fps', '{lif}', '--descriptor', 'rdf', '--per-species', '-n', 2, '-o', '{tmp}/o.xyz'],
     'apply to the NEP descriptors only'),
    (['fps', '{lif}', '--descriptor', 'untrained-nep', '--species', 'Cl', '-n', 2, '-o', '{tmp}/o.xyz'],
     'structure 0 has no Cl atoms'),
    (['fps', '{lif}', '--descriptor', 'untrained-nep', '--seed-set', '{lif}', '--min-distance', 1e-9, '-o',
      '{tmp}/o.xyz'], 'the selection is empty'),
    (['fps', '{lif}', '--model', '{tmp}/nep.txt', '-n', 2, '-o', '{tmp}/o.xyz'], 'nep.txt` does not exist'),
    (['series', '{lif}', '--descriptor', 'rdf', '--levels', 4, '-o', '{tmp}/s'],
     '13 structures cannot be halved 4 times'),
])
def test_clear_errors(lif_file, tmp_path, args, message):
    """Each bad input gives a message naming the file or value and what was expected (no traceback)."""
    (tmp_path / 'not_xyz.txt').write_text('1 2 3\n4 5 6\n')  # neither extended XYZ nor a NEP model
    args = [str(a).format(tmp=tmp_path, lif=lif_file) for a in args]
    result = invoke(args)
    assert result.exit_code != 0
    message = message.format(tmp=tmp_path, lif=lif_file)
    assert message in ' '.join(result.output.split()), result.output


def test_element_unknown_to_the_model(llzo, tmp_path):
    train, model = llzo
    copper = unknown_element_file(tmp_path)
    result = invoke(['fps', copper, '--model', model, '-n', 1, '-o', tmp_path / 'o.xyz'])
    assert result.exit_code != 0
    assert 'copper.xyz`: structure 1 contains Cu, which the NEP model' in result.output, result.output
    assert 'it knows Li, La, Zr, O' in result.output
    seeded = invoke(['fps', train, '--model', model, '--seed-set', copper, '-n', 1, '-o', tmp_path / 'o.xyz'])
    assert seeded.exit_code != 0 and 'copper.xyz`: structure 1 contains Cu' in seeded.output


def test_fps_output_is_the_selected_frames_verbatim(llzo, tmp_path):
    """`sample fps -o` copies the picked frames of the input file byte for byte, in the order picked (no re-serialising:
    every key and digit of the file is kept)."""
    train, model = llzo
    out = tmp_path / 'picked.xyz'
    data = run_json(['fps', train, '--model', model, '-n', 4, '-o', out])
    frames = split_xyz_frames(Path(train).read_bytes())
    assert len(frames) == 25
    assert out.read_bytes() == b''.join(frames[i] for i in data['indices'])
    assert len(read(out, ':')) == 4


def test_selection_falls_back_to_the_ase_writer(llzo, tmp_path):
    """Where the file's frames do not match the structures read one to one, the selection is written with ASE's
    extxyz writer instead (the same structures, labels kept)."""
    from aiida_sseff.cli.cmd_sample import _frames_of, _write_selection

    train, _ = llzo
    structures = read(train, ':')
    assert len(_frames_of(Path(train), structures)) == 25
    assert _frames_of(Path(train), structures[:3]) is None and _frames_of(tmp_path / 'absent.xyz', structures) is None
    out = tmp_path / 'sub' / 'fallback.xyz'
    _write_selection(out, None, structures, [4, 1])
    written = read(out, ':')
    assert len(written) == 2
    np.testing.assert_allclose(written[0].get_forces(), structures[4].get_forces(), atol=1e-7)
