"""The main job on the CPU: sseff.pipeline (sample → label → train NEP → Li transport) on the shipped Li10GeP2S12.

The same run as ``make demo`` (CHGNet as the surrogate reference, NEP trained by neppo, MD by the CPU engine), with
the codes that ``aiida-sseff setup`` creates::

    python examples/cpu/pipeline.py --dry-run      # check the inputs, run nothing
    python examples/cpu/pipeline.py --daemon       # submit; `verdi process list` follows it
"""

from common import launcher, load_code, parser, run_as_script, shipped_structure


def make_parser():
    result = parser(__doc__.split('\n', 1)[0])
    result.add_argument('--structure', default='Li10GeP2S12', help='shipped structure or a CIF/POSCAR/extxyz file')
    result.add_argument('--engine-code', default='sseff-engine@localhost', help='sampling MD and CHGNet labels')
    result.add_argument('--training-code', default='neppo@localhost', help='GPUMD nep or neppo')
    result.add_argument('--diffusion-code', default='sseff-engine@localhost', help='the CPU engine or GPUMD gpumd')
    result.add_argument('--mobile-species', default='Li')
    return result


def build(args):
    from aiida_sseff.workflows.pipeline import SseffPipelineWorkChain

    return SseffPipelineWorkChain.get_builder_from_protocol(
        load_code(args.engine_code), shipped_structure(args.structure), protocol=args.protocol, labeller='surrogate',
        training_code=load_code(args.training_code), diffusion_code=load_code(args.diffusion_code),
        mobile_species=args.mobile_species)


main = launcher(build, make_parser)

if __name__ == '__main__':
    run_as_script(main)
