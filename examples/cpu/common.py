"""What every CPU example shares: the command line, the profile, the inputs (codes, shipped structure, models,
datasets given by pk/uuid or by file) and the launch, with ``--dry-run`` to build and check without running.

A new example is a copy of one of the scripts here: a ``build(args)`` that returns a builder from the WorkChain's
``get_builder_from_protocol``, the options it needs added to :func:`parser`, and ``main = launcher(build, ...)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHIPPED_STRUCTURE = 'Li10GeP2S12'


def parser(description: str, protocol: bool = True) -> argparse.ArgumentParser:
    """The options of every example: profile, protocol (unless the WorkChain takes others), --dry-run, --daemon."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument('--profile', help='AiiDA profile (default: the default profile, e.g. `make demo`\'s `sseff` '
                                          'with AIIDA_PATH=.aiida)')
    if protocol:
        result.add_argument('--protocol', default='fast', help='fast (default), balanced or stringent')
    result.add_argument('--dry-run', action='store_true',
                        help='build the inputs and check them against the WorkChain\'s spec; run nothing')
    result.add_argument('--daemon', action='store_true', help='submit to the daemon instead of running here')
    return result


def load_profile_for(args):
    """``--profile`` or the default one; a profile that is already loaded (``verdi run``, a test) is kept."""
    from aiida import load_profile
    from aiida.manage import get_manager

    if args.profile is None and get_manager().get_profile() is not None:
        return get_manager().get_profile()
    return load_profile(args.profile, allow_switch=True)


def load_code(label: str):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_code(label)
    except NotExistent as exception:
        raise SystemExit(f'Error: no code `{label}`: `aiida-sseff setup` creates the localhost codes '
                         f'(verdi code list shows them)') from exception


def shipped_structure(name: str = SHIPPED_STRUCTURE):
    """A structure shipped with aiida-sseff, or any file ASE reads, as an (unstored) StructureData."""
    from aiida_sseff.cli.cmd_launch import load_structure_file

    return load_structure_file(name)


def load_model(value: str):
    """A NEP or MACE model: the pk/uuid of a stored one, or a file (``nep.txt`` → NepModel, else MaceModel)."""
    from aiida import orm

    from aiida_sseff.data.model import MaceModel, NepModel

    path = Path(value)
    if path.is_file():
        first_line = path.read_text(encoding='utf-8', errors='replace').split('\n', 1)[0]
        return NepModel(str(path)) if first_line.startswith('nep') else MaceModel(str(path))
    node = orm.load_node(value)
    if not isinstance(node, NepModel | MaceModel):
        raise SystemExit(f'Error: <{node.pk}> is a {type(node).__name__}, not a NEP or MACE model')
    return node


def load_dataset(value: str, require_labels: bool = True):
    """A ``sseff.dataset``: the pk/uuid of a stored one, or a file ASE reads (extxyz, OUTCAR, ...)."""
    from aiida import orm

    from aiida_sseff.data.dataset import LabelledDataset

    if Path(value).is_file():
        return LabelledDataset.from_file(value, require_labels=require_labels)
    node = orm.load_node(value)
    if not isinstance(node, LabelledDataset):
        raise SystemExit(f'Error: <{node.pk}> is a {type(node).__name__}, not a sseff.dataset')
    return node


def labelled(values, load, option: str) -> dict:
    """``{label: load(source)}`` from ``LABEL=FILE_OR_PK`` values of a repeated option (``--dataset``, ``--model``)."""
    result = {}
    for value in values:
        label, separator, source = value.partition('=')
        if not separator or not label:
            raise SystemExit(f'Error: {option} {value}: give LABEL=FILE_OR_PK')
        result[label] = load(source)
    return result


def check(builder) -> None:
    """Check the builder's inputs as the engine will when the WorkChain starts (defaults, then every port's and
    namespace's validator); SystemExit naming the problem."""
    spec = builder.process_class.spec()
    inputs = spec.inputs.pre_process(builder._inputs(prune=True))
    error = spec.inputs.validate(inputs)
    if error is not None:
        raise SystemExit(f'Error: the inputs of {builder.process_class.__name__} are refused: {error}')


def launch(builder, args):
    """``--dry-run``: check and stop; ``--daemon``: submit; else run here and return the finished node."""
    from aiida.engine import run_get_node, submit

    check(builder)
    name = builder.process_class.__name__
    if args.dry_run:
        print(f'Dry run: the inputs of {name} are valid; nothing was run or stored')
        return None
    if args.daemon:
        node = submit(builder)
        print(f'Submitted {name} <{node.pk}>: verdi process status {node.pk}')
        return node
    _, node = run_get_node(builder)
    print(f'{name} <{node.pk}> finished with exit status {node.exit_status} {node.exit_message or ""}'.rstrip())
    print(f'Outputs: {", ".join(sorted(node.outputs))} (verdi process show {node.pk})')
    return node


def launcher(build, make_parser, summary=None):
    """``main(argv)`` of an example: parse, load the profile, build, launch; returns the exit status.
    ``summary(node)`` prints the main numbers of a run that finished here."""

    def main(argv=None) -> int:
        args = make_parser().parse_args(argv)
        load_profile_for(args)
        node = launch(build(args), args)
        if node is not None and not args.daemon and node.is_finished_ok and summary is not None:
            summary(node)
        return 0 if node is None or args.daemon or node.is_finished_ok else 1

    return main


def run_as_script(main) -> None:
    sys.exit(main())
