"""The finite-size study on the CPU: sseff.study.finite_size (one model's Li transport in a series of supercells and
run lengths) → whether Ea and D have converged with the cell and the run, and the smallest converged cell.

The model is a ``nep.txt`` / MACE file or the pk of a stored model (e.g. the pipeline example's ``training.model``)::

    python examples/cpu/finite_size_study.py --model nep.txt --dry-run
"""

from common import launcher, load_code, load_model, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--model', required=True, help='nep.txt / MACE model file, or the pk/uuid of a stored model')
    result.add_argument('--structure', default='Li10GeP2S12', help='the unit cell that is replicated')
    result.add_argument('--code', default='sseff-engine@localhost', help='the diffusion MD')
    return result


def build(args):
    from aiida_sseff.workflows.finite_size import FiniteSizeStudyWorkChain

    return FiniteSizeStudyWorkChain.get_builder_from_protocol(
        load_code(args.code), load_model(args.model), shipped_structure(args.structure), protocol=args.protocol)


def summary(node):
    print(node.outputs.table['markdown'])


main = launcher(build, make_parser, summary)

if __name__ == '__main__':
    run_as_script(main)
