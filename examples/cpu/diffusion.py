"""Li transport of a model on the CPU: sseff.diffusion (MD at several temperatures → D(T) → Arrhenius Ea, σ(300 K)).

The model is a NEP (``nep.txt``, run by calorine's CPUNEP) or MACE model, as a file or the pk of a stored one (the
``training.model`` output of the pipeline example), on the shipped Li10GeP2S12 cell replicated to twice its cutoff::

    python examples/cpu/diffusion.py --model nep.txt --dry-run
    python examples/cpu/diffusion.py --model 1234 --daemon
"""

from common import launcher, load_code, load_model, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--model', required=True, help='nep.txt / MACE model file, or the pk/uuid of a stored model')
    result.add_argument('--structure', default='Li10GeP2S12', help='shipped structure or a CIF/POSCAR/extxyz file')
    result.add_argument('--code', default='sseff-engine@localhost', help='the CPU engine (or a GPUMD gpumd code)')
    result.add_argument('--mobile-species', default='Li')
    return result


def build(args):
    from aiida_sseff.workflows.diffusion import DiffusionWorkChain

    return DiffusionWorkChain.get_builder_from_protocol(
        load_code(args.code), shipped_structure(args.structure), model=load_model(args.model), protocol=args.protocol,
        overrides={'mobile_species': args.mobile_species})


def summary(node):
    results = node.outputs.results
    print(f"Ea = {results['Ea_eV']:.3f} ± {results['Ea_err_eV']:.3f} eV, D0 = {results['D0_cm2_s']:.2e} cm²/s")


main = launcher(build, make_parser, summary)

if __name__ == '__main__':
    run_as_script(main)
