"""The dataset-size study on the CPU: sseff.study.dataset_size (one held-out test set, the nested FPS series 1/2^n of
the rest, one NEP per size, each model's Li transport) → RMSE and Ea ± σ against the number of Li environments.

The labelled set is a file (extxyz with energies and forces) or the pk of a ``sseff.dataset``, e.g. the labelled set
of the pipeline example (its ``labelling.dataset`` output)::

    python examples/cpu/dataset_size_study.py --dataset train.xyz --dry-run
"""

from common import launcher, load_code, load_dataset, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--dataset', required=True, help='labelled set: extxyz file or pk/uuid of a sseff.dataset')
    result.add_argument('--structure', default='Li10GeP2S12', help='the cell of the diffusion MD of every model')
    result.add_argument('--training-code', default='neppo@localhost', help='neppo or GPUMD nep')
    result.add_argument('--engine-code', default='sseff-engine@localhost', help='the diffusion MD')
    return result


def build(args):
    from aiida_sseff.workflows.dataset_size import DatasetSizeStudyWorkChain

    return DatasetSizeStudyWorkChain.get_builder_from_protocol(
        load_code(args.training_code), load_dataset(args.dataset), load_code(args.engine_code),
        shipped_structure(args.structure), protocol=args.protocol)


def summary(node):
    print(node.outputs.table['markdown'])


main = launcher(build, make_parser, summary)

if __name__ == '__main__':
    run_as_script(main)
