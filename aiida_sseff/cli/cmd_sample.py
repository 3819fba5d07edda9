"""``aiida-sseff sample fps|series``: farthest-point sampling of extended-XYZ files, outside any database."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aiida_sseff.cli.root import cmd_sample

DESCRIPTOR_CHOICES = {'untrained-nep': 'untrained_nep', 'rdf': 'rdf'}


def _read(path: str, what: str) -> list:
    """All frames of an extended-XYZ file (labels kept), or a ClickException naming the file."""
    from ase.io import read

    file = Path(path)
    if not file.is_file():
        raise click.ClickException(f'{what} `{file}` does not exist')
    try:
        structures = read(str(file), index=':', format='extxyz')
    except Exception as exception:  # ASE raises many exception types; the user needs the file and the reason
        raise click.ClickException(f'cannot read {what} `{file}` as extended XYZ: {exception}') from exception
    if not structures:
        raise click.ClickException(f'{what} `{file}` holds no structure')
    return structures


def _descriptor_options(model: str | None, descriptor: str | None, per_species: bool, species: str | None) -> dict:
    if model is not None and descriptor is not None:
        raise click.UsageError('give either --model (its NEP descriptors) or --descriptor, not both')
    if model is None and descriptor is None:
        raise click.UsageError('give --model nep.txt (a trained NEP model) or --descriptor untrained-nep|rdf')
    if model is not None and not Path(model).is_file():
        raise click.ClickException(f'NEP model `{model}` does not exist')
    if per_species and species:
        raise click.UsageError('--per-species and --species exclude each other')
    return {'descriptor': 'nep' if model else DESCRIPTOR_CHOICES[descriptor], 'model_path': model,
            'per_species': per_species, 'species': species}


def _write(path: Path, structures: list) -> None:
    from ase.io import write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(str(path), structures, format='extxyz')
    except OSError as exception:
        raise click.ClickException(f'cannot write the selected structures to `{path}`: {exception}') from exception


def _frames_of(source: Path, candidates: list) -> list[bytes] | None:
    """The frames of ``source`` as bytes, one per structure ASE read from it; None where they do not match one to one
    (then the selection is written through ASE's writer)."""
    from aiida_sseff.io.structures import split_xyz_frames

    try:
        frames = split_xyz_frames(source.read_bytes())
    except (OSError, ValueError):
        return None
    return frames if len(frames) == len(candidates) else None


def _write_selection(path: Path, frames: list[bytes] | None, candidates: list, indices: list[int]) -> None:
    """The selected structures in the order picked: the file's own frames, copied verbatim (every key and digit kept),
    where ``frames`` are known."""
    if frames is None:
        _write(path, [candidates[i] for i in indices])
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b''.join(frames[i] for i in indices))
    except OSError as exception:
        raise click.ClickException(f'cannot write the selected structures to `{path}`: {exception}') from exception


def descriptor_options(function):
    """The options every ``sample`` command shares: descriptor, species handling and the seed set."""
    options = [
        click.option('--model', type=click.Path(dir_okay=False), default=None,
                     help='A trained NEP model (nep.txt): distances in its descriptor space (calorine).'),
        click.option('--descriptor', type=click.Choice(sorted(DESCRIPTOR_CHOICES)), default=None,
                     help='A descriptor that needs no trained model: untrained-nep (the NEP descriptor with fixed '
                          'random coefficients c_nk, scaled over this batch; see docs/user/sampling.md) or rdf '
                          '(smooth pair-distance histograms).'),
        click.option('--seed-set', type=click.Path(dir_okay=False), default=None,
                     help='An existing training set (extxyz): the selection moves away from it.'),
        click.option('--per-species', is_flag=True, help='NEP descriptors: per-species means, concatenated.'),
        click.option('--species', default=None, help='NEP descriptors: mean over the atoms of this species only.'),
        click.option('--json', 'as_json', is_flag=True, help='Print one JSON object instead of text.'),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@cmd_sample.command('fps')
@click.argument('structures', type=click.Path(dir_okay=False))
@descriptor_options
@click.option('-n', '--n-select', type=click.IntRange(min=1), default=None, help='Number of structures to select.')
@click.option('--min-distance', type=click.FloatRange(min=0.0), default=None,
              help='Alternatively: select while the farthest structure is at least this far (descriptor units).')
@click.option('-o', '--output', type=click.Path(dir_okay=False), required=True, help='Selected structures (extxyz).')
def cmd_fps(structures, model, descriptor, seed_set, per_species, species, as_json, n_select, min_distance, output):
    """Select from STRUCTURES (extxyz) by greedy max-min farthest-point sampling; write them in the order picked.

    \b
    aiida-sseff sample fps candidates.xyz --model nep.txt -n 100 --seed-set train.xyz -o selected.xyz
    aiida-sseff sample fps candidates.xyz --descriptor untrained-nep --per-species --min-distance 0.05 -o sel.xyz
    """
    from aiida_sseff.analysis.sampling import json_distances, select_by_fps

    if (n_select is None) == (min_distance is None):
        raise click.UsageError('give exactly one of -n/--n-select and --min-distance')
    options = _descriptor_options(model, descriptor, per_species, species)
    candidates = _read(structures, 'structure file')
    seeds = _read(seed_set, 'seed set') if seed_set else None
    if n_select is not None and not 1 <= n_select <= len(candidates):
        raise click.ClickException(f'cannot select {n_select} of the {len(candidates)} structures in `{structures}` '
                                   f'(expected -n between 1 and {len(candidates)})')
    try:
        result, info = select_by_fps(candidates, n_select=n_select, min_distance=min_distance,
                                         seed_structures=seeds, names=(f'`{structures}`', f'`{seed_set}`'), **options)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    indices = [int(i) for i in result.indices]
    if not indices:
        raise click.ClickException(f'no structure of `{structures}` is {min_distance} or farther from the seed set: '
                                   'the selection is empty (lower --min-distance)')
    _write_selection(Path(output), _frames_of(Path(structures), candidates), candidates, indices)
    distances = json_distances(result.min_distances)
    if as_json:
        click.echo(json.dumps({'input': str(structures), 'output': str(output), 'n_candidates': len(candidates),
                               'n_seed': len(seeds or []), 'n_selected': len(indices), 'indices': indices,
                               'min_distances': distances, **info}))
        return
    click.echo(f'selected {len(indices)} of {len(candidates)} structures ({info["descriptor"]} descriptor, '
               f'{info["dimension"]} components) -> {output}')
    last = distances[-1]
    click.echo(f'min-distance of the last pick: {"inf" if last is None else f"{last:.6g}"}')


@cmd_sample.command('series')
@click.argument('structures', type=click.Path(dir_okay=False))
@descriptor_options
@click.option('--levels', type=click.IntRange(min=1), default=7, show_default=True,
              help='Number of halvings: subsets of N // 2^n structures, n = 1 .. levels.')
@click.option('-o', '--output', type=click.Path(file_okay=False), required=True,
              help='Folder for level_1.xyz ... level_<levels>.xyz (created).')
def cmd_series(structures, model, descriptor, seed_set, per_species, species, as_json, levels, output):
    """Write the nested FPS subsets of STRUCTURES of sizes N // 2^n (each a subset of the one before).

    \b
    aiida-sseff sample series train.xyz --descriptor untrained-nep --levels 7 -o series/
    """
    from aiida_sseff.analysis.sampling import series_by_fps

    options = _descriptor_options(model, descriptor, per_species, species)
    dataset = _read(structures, 'structure file')
    seeds = _read(seed_set, 'seed set') if seed_set else None
    try:
        series, info = series_by_fps(dataset, n_levels=levels, seed_structures=seeds,
                                            names=(f'`{structures}`', f'`{seed_set}`'), **options)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    folder = Path(output)
    frames = _frames_of(Path(structures), dataset)
    rows = []
    for level, indices in enumerate(series, start=1):
        path = folder / f'level_{level}.xyz'
        _write_selection(path, frames, dataset, [int(i) for i in indices])
        rows.append({'level': level, 'n_structures': int(len(indices)), 'file': str(path),
                     'indices': [int(i) for i in indices]})
    if as_json:
        click.echo(json.dumps({'input': str(structures), 'n_structures': len(dataset), 'levels': rows, **info}))
        return
    for row in rows:
        click.echo(f'level {row["level"]}: {row["n_structures"]:>6} structures -> {row["file"]}')
