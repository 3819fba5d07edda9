"""The transport-converged loop on the CPU: sseff.loop (train a committee, explore by MD, label the frames inside the
committee's trust window, repeat until Ea and D(T) agree across iterations and replicas) on the shipped LGPS cell
with the CHGNet surrogate labeller::

    python examples/cpu/loop.py --dry-run
"""

from common import launcher, load_code, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--structure', default='Li10GeP2S12', help='shipped structure or a CIF/POSCAR/extxyz file')
    result.add_argument('--code', default='sseff-engine@localhost',
                        help='the CPU engine: exploration MD, diffusion MD and the surrogate labeller')
    result.add_argument('--training-code', default='neppo@localhost', help='neppo or GPUMD nep (the committee)')
    return result


def build(args):
    from aiida_sseff.workflows.loop import LoopWorkChain

    return LoopWorkChain.get_builder_from_protocol(
        load_code(args.code), shipped_structure(args.structure), protocol=args.protocol, labeller='surrogate',
        training_code=load_code(args.training_code))


def summary(node):
    iterations = node.outputs.iterations
    print(f"{iterations['outcome']}: {len(iterations['rows'])} iterations, {iterations['labels_used']} labels")


main = launcher(build, make_parser, summary)

if __name__ == '__main__':
    run_as_script(main)
