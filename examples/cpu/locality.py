"""Force locality on the CPU: sseff.locality (σ_f of the central atom's force versus the frozen radius r_f, per
species), with a model for the perturbation MD and CHGNet (or a second model) as the surrogate whose forces are
measured::

    python examples/cpu/locality.py --model nep.txt --dry-run
    python examples/cpu/locality.py --model 1234 --surrogate-model 5678 --daemon
"""

from common import launcher, load_code, load_model, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--model', required=True, help='model of the perturbation MD: a file or the pk of a model')
    result.add_argument('--surrogate-model', help='model whose forces are measured (default: CHGNet)')
    result.add_argument('--structure', default='Li10GeP2S12', help='shipped structure or a CIF/POSCAR/extxyz file')
    result.add_argument('--code', default='sseff-engine@localhost', help='the CPU engine')
    result.add_argument('--species', help='comma-separated species to test (default: every species)')
    return result


def build(args):
    from aiida_sseff.workflows.locality import LocalityWorkChain

    surrogate = load_model(args.surrogate_model) if args.surrogate_model else None
    return LocalityWorkChain.get_builder_from_protocol(
        load_code(args.code), shipped_structure(args.structure), model=load_model(args.model),
        surrogate_model=surrogate, surrogate_calculator=None if surrogate else {'kind': 'chgnet'},
        protocol=args.protocol, species=args.species.split(',') if args.species else None)


main = launcher(build, make_parser)

if __name__ == '__main__':
    run_as_script(main)
