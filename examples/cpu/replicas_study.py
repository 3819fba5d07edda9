"""The replica study on the CPU: sseff.study.replicas (n NEP models with different seeds on each labelled set, the
Li transport of every replica) → the spread of Ea and D(T) across replicas beside each replica's own error bar.

Each labelled set is ``label=file`` (extxyz) or ``label=pk`` of a ``sseff.dataset``, e.g. the two references of the
reference-quality example (its ``labelling_a.dataset`` and ``labelling_b.dataset`` outputs)::

    python examples/cpu/replicas_study.py --dataset gamma=gamma.xyz --dataset dense_k=dense.xyz --dry-run
"""

from common import labelled, launcher, load_code, load_dataset, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--dataset', action='append', required=True, metavar='LABEL=FILE_OR_PK',
                        help='a labelled set and its label (give it once per set)')
    result.add_argument('--structure', default='Li10GeP2S12', help='the cell of the diffusion MD of every replica')
    result.add_argument('--training-code', default='neppo@localhost', help='neppo or GPUMD nep')
    result.add_argument('--engine-code', default='sseff-engine@localhost', help='the diffusion MD')
    return result


def build(args):
    from aiida_sseff.workflows.replicas import ReplicaStudyWorkChain

    datasets = labelled(args.dataset, load_dataset, '--dataset')
    return ReplicaStudyWorkChain.get_builder_from_protocol(
        load_code(args.training_code), datasets, load_code(args.engine_code), shipped_structure(args.structure),
        protocol=args.protocol)


def summary(node):
    print(node.outputs.table['markdown'])


main = launcher(build, make_parser, summary)

if __name__ == '__main__':
    run_as_script(main)
