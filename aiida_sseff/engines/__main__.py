"""``aiida-sseff-engine``: the program the engine CalcJobs run on the compute node.

    aiida-sseff-engine md     [--input engine.json]   # reads structure.xyz
    aiida-sseff-engine label  [--input engine.json]   # reads structures.xyz
    aiida-sseff-engine locality [--input engine.json] # reads structure.xyz (see engines/locality.py)

``engine.json`` holds ``{"calculator": {...spec...}, "parameters": {...}}`` (for locality also an optional
``"surrogate": {...spec...}``; without it the MD model is the surrogate) and, for md, optionally
``"checkpoint": "restart.npz"`` (continue from that checkpoint) and ``"wall_time_s": 3540`` (stop cleanly, with a
checkpoint, after that many seconds). Whatever happens, ``report.json`` is written with a ``status`` the parser maps
to an exit code: ``ok``, ``out_of_walltime``, ``invalid_input``, ``unknown_element``, ``md_unstable``,
``atoms_too_close``, ``all_failed``, ``error``; beside it the threads the job ran with and ``software``, the versions
of Python and of the packages the run loaded (numpy, ASE, calorine, torch, MACE, ...), which the parser keeps in the
``results`` node.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

RETURN_CODES = {
    'ok': 0,
    'invalid_input': 2,
    'unknown_element': 10,
    'md_unstable': 11,
    'atoms_too_close': 12,
    'all_failed': 13,
    'out_of_walltime': 14,
    'error': 1,
}


#: top-level module -> distribution: the versions the report records, of the packages the run actually loaded
RECORDED_DISTRIBUTIONS = {'aiida_sseff': 'aiida-sseff', 'numpy': 'numpy', 'scipy': 'scipy', 'ase': 'ase',
                          'calorine': 'calorine', 'torch': 'torch', 'e3nn': 'e3nn', 'mace': 'mace-torch',
                          'chgnet': 'chgnet'}


def software_versions() -> dict:
    """Python's version and those of the packages of RECORDED_DISTRIBUTIONS that this process imported (any of their
    modules), from the installed distributions' metadata: what a number in the report was computed with."""
    # not data.reference._package_version, the same lookup: that module imports AiiDA, which the engine program on
    # the compute node does not load (start-up time, issue #14)
    import platform
    from importlib.metadata import PackageNotFoundError, version

    loaded = {name.partition('.')[0] for name in list(sys.modules)}
    versions = {'python': platform.python_version()}
    for module, distribution in RECORDED_DISTRIBUTIONS.items():
        if module in loaded:
            try:
                versions[distribution] = version(distribution)
            except PackageNotFoundError:  # a module on the path without installed metadata
                versions[distribution] = None
    return versions


def _run_md(config: dict, directory: Path, started: float) -> dict:
    from aiida_sseff.engines._lazy import ase_io

    read = ase_io().read  # before anything imports ase.io with every package __init__ (start-up time)
    from aiida_sseff.engines.calculators import check_elements, make_calculator
    from aiida_sseff.engines.md import MdParameterError, run_md, validate_md_parameters

    parameters = validate_md_parameters(config.get('parameters', {}))
    atoms = read(directory / 'structure.xyz', format='extxyz')
    check_elements(atoms.get_chemical_symbols(), config['calculator'], directory)
    calculator = make_calculator(config['calculator'], directory)
    checkpoint = config.get('checkpoint')
    wall_time_s = config.get('wall_time_s')
    if wall_time_s is not None and not float(wall_time_s) >= 0:
        raise MdParameterError(f'wall_time_s must be a non-negative number of seconds, got {wall_time_s}')
    if wall_time_s is not None:  # the budget counts from the program's start: loading a model takes time too
        wall_time_s = max(0.0, float(wall_time_s) - (time.perf_counter() - started))
    return run_md(atoms, calculator, parameters, directory,
                  checkpoint=directory / checkpoint if checkpoint else None, wall_time_s=wall_time_s)


def _run_label(config: dict, directory: Path) -> dict:
    from aiida_sseff.engines.calculators import check_elements, make_calculator
    from aiida_sseff.engines.label import label_structures
    from aiida_sseff.io.structures import read_extxyz, write_extxyz_bytes

    structures = read_extxyz(directory / 'structures.xyz')
    for structure in structures:
        structure.calc = None
    check_elements({s for atoms in structures for s in atoms.get_chemical_symbols()}, config['calculator'], directory)
    calculator = make_calculator(config['calculator'], directory)
    labelled, failures, wall = label_structures(structures, calculator)
    if labelled:
        (directory / 'labelled.xyz').write_bytes(write_extxyz_bytes(labelled))
    status = 'ok' if labelled else 'all_failed'
    return {
        'status': status,
        'n_structures': len(structures),
        'n_labelled': len(labelled),
        'failures': failures,
        'wall_time_s': wall,
    }


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(prog='aiida-sseff-engine', description=__doc__.split('\n\n')[0])
    parser.add_argument('task', choices=('md', 'label', 'locality'))
    parser.add_argument('--input', default='engine.json', help='engine input (JSON)')
    parser.add_argument('--directory', default='.', help='working directory')
    args = parser.parse_args(argv)

    from aiida_sseff.engines.calculators import CalculatorSpecError, UnknownElementError
    from aiida_sseff.engines.md import AtomsTooCloseError, MdParameterError, MdUnstableError, write_report

    directory = Path(args.directory)
    try:
        config = json.loads((directory / args.input).read_text())
        from aiida_sseff.engines.calculators import validate_spec

        config['calculator'] = validate_spec(config.get('calculator', {}))
        if args.task == 'md':
            report = _run_md(config, directory, started)
        elif args.task == 'label':
            report = _run_label(config, directory)
        else:
            from aiida_sseff.engines.locality import run_from_config

            report = run_from_config(config, directory)
    except (CalculatorSpecError, MdParameterError, FileNotFoundError, json.JSONDecodeError) as exception:
        report = {'status': 'invalid_input', 'message': str(exception)}
    except UnknownElementError as exception:
        report = {'status': 'unknown_element', 'message': str(exception)}
    except MdUnstableError as exception:
        report = {'status': 'md_unstable', 'message': str(exception)}
    except AtomsTooCloseError as exception:
        report = {'status': 'atoms_too_close', 'message': str(exception)}
    except Exception as exception:  # anything else: keep the traceback for the user, the parser reports it
        report = {'status': 'error', 'message': f'{type(exception).__name__}: {exception}',
                  'traceback': traceback.format_exc()}
    report['task'] = args.task
    # the threads this job ran with (its share of the cores, from the submit script): speeds mean little without it
    report['threads'] = int(os.environ['OMP_NUM_THREADS']) if os.environ.get('OMP_NUM_THREADS', '').isdigit() else None
    report['software'] = software_versions()
    write_report(directory, report)
    if report['status'] == 'out_of_walltime':
        print(f'aiida-sseff-engine md: stopped for the wall time at production step {report["step"]} of '
              f'{report["n_steps"]}; continue from checkpoint.npz', file=sys.stderr)
    elif report['status'] != 'ok':
        print(f'aiida-sseff-engine {args.task}: {report["status"]}: {report.get("message", "")}', file=sys.stderr)
    return RETURN_CODES[report['status']]


if __name__ == '__main__':
    sys.exit(main())
