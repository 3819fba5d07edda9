"""The reference-quality study on the CPU: sseff.study.reference_quality labels the same structures twice with CP2K,
Γ only (protocol ``gamma``) and with a dense k-mesh (``balanced``: KSPACING 0.25 Å⁻¹), and compares the labels per
element.

The structures are a file ASE reads, or by default two rattled copies of the shipped Li10GeP2S12 cell (50 atoms; a
CP2K single point of it takes minutes on a laptop, the k-mesh one longer). The CP2K code is the one
``aiida-sseff setup`` creates when Debian's cp2k and cp2k-data are installed::

    python examples/cpu/reference_quality_study.py --dry-run
"""

from common import launcher, load_code, load_dataset, parser, run_as_script

N_RATTLED = 2
RATTLE_STDEV = 0.05  # Å: displaced enough that the forces are not zero, well inside the harmonic range


def make_parser():
    result = parser(__doc__.split('\n', 1)[0], protocol=False)
    result.add_argument('--structures', help='structures to label: a file ASE reads or the pk of a sseff.dataset '
                                             f'(default: {N_RATTLED} rattled copies of Li10GeP2S12)')
    result.add_argument('--code', default='cp2k@localhost', help='the CP2K code')
    result.add_argument('--protocols', default='gamma,balanced', help='the two sseff.label protocols compared')
    return result


def rattled_structures():
    """``N_RATTLED`` copies of the shipped cell, each rattled with its own seed, as an unlabelled dataset."""
    from importlib.resources import files

    from ase.io import read

    from aiida_sseff.data.dataset import LabelledDataset

    path = files('aiida_sseff.structures').joinpath('Li10GeP2S12.cif')
    structures = []
    for seed in range(N_RATTLED):
        atoms = read(str(path))
        atoms.rattle(RATTLE_STDEV, seed=seed)
        structures.append(atoms)
    return LabelledDataset(structures, require_labels=False)


def build(args):
    from aiida_sseff.workflows.studies import ReferenceQualityWorkChain

    structures = load_dataset(args.structures, require_labels=False) if args.structures else rattled_structures()
    protocols = tuple(args.protocols.split(','))
    if len(protocols) != 2:
        raise SystemExit(f'Error: --protocols needs two protocols, got {args.protocols!r}')
    return ReferenceQualityWorkChain.get_builder_from_protocol(load_code(args.code), structures, labeller='cp2k',
                                                               protocols=protocols)


main = launcher(build, make_parser)

if __name__ == '__main__':
    run_as_script(main)
