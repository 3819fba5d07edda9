"""The speed study on the CPU: sseff.study.speed (a short MD of each model in supercells of one structure) → MD speed
and peak memory against the number of atoms, the wall time for 10^6 steps and the largest cell that fits in memory.

Each model is ``label=file`` (nep.txt / MACE) or ``label=pk`` of a stored model::

    python examples/cpu/speed_study.py --model NEP=nep.txt --memory-limit-mb 16000 --dry-run
"""

from common import labelled, launcher, load_code, load_model, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--model', action='append', required=True, metavar='LABEL=FILE_OR_PK',
                        help='a model and its label (give it once per model)')
    result.add_argument('--structure', default='Li10GeP2S12', help='the unit cell that is replicated')
    result.add_argument('--code', default='sseff-engine@localhost', help='the CPU engine')
    result.add_argument('--memory-limit-mb', type=float, default=None,
                        help="memory of the compute node (default: the computer's default_memory_per_machine)")
    return result


def build(args):
    from aiida_sseff.workflows.speed import SpeedStudyWorkChain

    models = labelled(args.model, load_model, '--model')
    return SpeedStudyWorkChain.get_builder_from_protocol(
        load_code(args.code), shipped_structure(args.structure), models, protocol=args.protocol,
        memory_limit_mb=args.memory_limit_mb)


def summary(node):
    for row in node.outputs.table['rows']:
        print(row)


main = launcher(build, make_parser, summary)

if __name__ == '__main__':
    run_as_script(main)
