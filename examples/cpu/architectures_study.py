"""The architecture study on the CPU: sseff.study.architectures (NEP, qNEP and MACE variants trained on one labelled
set, each judged by its test errors, its cost and the Li transport it predicts in one structure) → one table.

The labelled set is a file (extxyz with energies and forces) or the pk of a ``sseff.dataset``, e.g. the labelled
set of the pipeline example (its ``labelling.dataset`` output)::

    python examples/cpu/architectures_study.py --dataset train.xyz --architectures NEP,MACE_T0_I --dry-run
"""

from common import launcher, load_code, load_dataset, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--dataset', required=True, help='labelled set: extxyz file or pk/uuid of a sseff.dataset')
    result.add_argument('--structure', default='Li10GeP2S12', help='the cell of the diffusion MD of every model')
    result.add_argument('--architectures', help="comma-separated labels of the protocol's architectures "
                                                '(default: all of them, e.g. NEP,qNEP,MACE_T0_I,MACE_T1_E)')
    result.add_argument('--nep-code', default='neppo@localhost')
    result.add_argument('--mace-code', default='sseff-mace@localhost')
    result.add_argument('--engine-code', default='sseff-engine@localhost', help='speed runs and diffusion MD')
    return result


def build(args):
    from aiida_sseff.workflows.architectures import ArchitectureTrainingWorkChain
    from aiida_sseff.workflows.studies import ArchitecturesStudyWorkChain

    architectures = ArchitectureTrainingWorkChain.get_protocol_inputs(args.protocol)['architectures']
    if args.architectures:
        chosen = args.architectures.split(',')
        unknown = sorted(set(chosen) - set(architectures))
        if unknown:
            raise SystemExit(f'Error: unknown architecture(s) {unknown}; the protocol has {sorted(architectures)}')
        architectures = {label: architectures[label] for label in chosen}
    kinds = {spec['kind'] for spec in architectures.values()}
    codes = {'engine': load_code(args.engine_code)}
    if 'nep' in kinds:
        codes['nep'] = load_code(args.nep_code)
    if 'mace' in kinds:
        codes['mace'] = load_code(args.mace_code)
    overrides = {'reference_architecture': 'NEP'} if 'NEP' in architectures else None
    return ArchitecturesStudyWorkChain.get_builder_from_protocol(
        codes, load_dataset(args.dataset), codes['engine'], shipped_structure(args.structure), protocol=args.protocol,
        architectures=architectures, overrides=overrides)


main = launcher(build, make_parser)

if __name__ == '__main__':
    run_as_script(main)
