"""Compatibility of mace-torch 0.3.16 / e3nn 0.4.4 with torch 2.13: the one place every import of mace goes through.

e3nn 0.4.4 loads its Wigner constants at import time with a bare ``torch.load(constants.pt)``. Since torch 2.6 the
default is ``weights_only=True``, and that file holds ``slice`` objects, so ``import e3nn.o3`` fails with
``Unsupported global: GLOBAL builtins.slice``. mace-torch hides this only by accident: ``mace/__init__.py`` sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process, which helps when ``mace`` is imported before ``e3nn``
and not otherwise (e.g. a library that imports e3nn first). The fix documented by torch for such files is to allow
the one harmless global, ``torch.serialization.add_safe_globals([slice])``, before e3nn is imported
(https://pytorch.org/docs/stable/notes/serialization.html#weights-only); it leaves every other ``torch.load``
restricted. :func:`import_mace` applies it and then imports mace; our calculator factory, ``MaceModel`` and the
``aiida-sseff-mace`` wrapper that ``sseff.mace.train`` runs on the compute node all call it.

``aiida-sseff-mace train ARGS`` runs mace-torch's ``mace_run_train`` with ARGS, ``aiida-sseff-mace eval ARGS`` its
``mace_eval_configs`` (which here also takes comma-separated ``--configs``/``--output`` lists, evaluated in one
process): the same programs, behind the fix.
"""

from __future__ import annotations

import sys

__all__ = ['allow_e3nn_constants', 'import_mace', 'main']

#: wrapper sub-commands -> the mace-torch console script module they run
MACE_PROGRAMS = {'train': 'mace.cli.run_train', 'eval': 'mace.cli.eval_configs'}


def allow_e3nn_constants() -> None:
    """Let ``torch.load(weights_only=True)`` read e3nn's ``constants.pt`` (it holds ``slice`` objects). Idempotent."""
    import torch

    if slice not in torch.serialization.get_safe_globals():
        torch.serialization.add_safe_globals([slice])


def import_mace():
    """Apply :func:`allow_e3nn_constants` and import mace-torch; returns the ``mace`` package.

    :raises ImportError: mace-torch is not installed (``pip install 'aiida-sseff[mace]'``).
    """
    allow_e3nn_constants()
    try:
        import e3nn.o3  # noqa: F401  (first, on purpose: the import that fails without the fix)
        import mace
    except ImportError as exception:
        raise ImportError(f"mace-torch is needed for MACE models: pip install 'aiida-sseff[mace]' ({exception})"
                          ) from exception
    return mace


def main(argv: list[str] | None = None) -> int:
    """``aiida-sseff-mace {train,eval} ARGS``: run mace-torch's training or evaluation program behind the fix."""
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in MACE_PROGRAMS:
        sys.stderr.write(f'usage: aiida-sseff-mace {{{",".join(MACE_PROGRAMS)}}} [mace-torch options]\n')
        return 2
    program, arguments = argv[0], argv[1:]
    import_mace()
    module = importlib.import_module(MACE_PROGRAMS[program])
    if program == 'eval':
        # several sets in one process (`--configs a.xyz,b.xyz --output pa.xyz,pb.xyz`): importing torch and mace
        # takes longer than evaluating a small set
        for single in _split_sets(arguments):
            sys.argv = ['mace_eval_configs', *single]
            module.run(module.parse_args())
        return 0
    sys.argv = [f'mace_{program}', *arguments]  # the mace programs read sys.argv through argparse
    module.main()
    return 0


def _split_sets(arguments: list[str]) -> list[list[str]]:
    """``--configs a,b --output c,d REST`` -> ``[[--configs a --output c REST], [--configs b --output d REST]]``."""
    arguments = list(arguments)
    lists = {}
    for option in ('--configs', '--output'):
        if option in arguments:
            index = arguments.index(option)
            lists[option] = arguments[index + 1].split(',')
            del arguments[index:index + 2]
    configs, outputs = lists.get('--configs', []), lists.get('--output', [])
    if len(configs) != len(outputs):
        raise SystemExit(f'aiida-sseff-mace eval: {len(configs)} --configs but {len(outputs)} --output files')
    return [['--configs', c, '--output', o, *arguments] for c, o in zip(configs, outputs, strict=True)]


if __name__ == '__main__':
    sys.exit(main())
