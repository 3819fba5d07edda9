"""Make the ordered Li10GeP2S12 cell shipped as aiida_sseff/structures/Li10GeP2S12.cif.

Source: the experimental LGPS structure bundled with pymatgen (pymatgen/util/structures/Li10GeP2S12.json;
P4_2/nmc, a = 8.694 Å, c = 12.599 Å, partial Li occupancies 16h 0.691, 4d 1.0, 8f 0.643 and Ge/P 0.515/0.485 on 4d,
from the published refinement of Kamaya et al., Nat. Mater. 10, 682 (2011)).
Occupancies are rounded to the integer cell content Li20 Ge2 P4 S24 (16h: 11/16, 8f: 5/8, 4d Ge/P: 1/2) and the
configuration with the lowest Ewald energy (formal charges Li+ Ge4+ P5+ S2-) is chosen by pymatgen's
OrderDisorderedStructureTransformation, the usual way ordered LGPS models are made (e.g. Mo, Ong & Ceder 2012).

    python examples/structures/order_lgps.py aiida_sseff/structures/Li10GeP2S12.cif
"""

import sys
from pathlib import Path

import pymatgen.util
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter
from pymatgen.transformations.standard_transformations import OrderDisorderedStructureTransformation

ROUNDED = {0.691: {'Li': 11 / 16}, 0.643: {'Li': 5 / 8}}


def ordered_lgps() -> Structure:
    source = Path(pymatgen.util.__file__).parent / 'structures' / 'Li10GeP2S12.json'
    disordered = Structure.from_file(source)
    species = []
    for site in disordered:
        occupancy = site.species.as_dict()
        if 'Ge' in occupancy:
            occupancy = {'Ge': 0.5, 'P': 0.5}
        elif occupancy.get('Li') in ROUNDED:
            occupancy = ROUNDED[occupancy['Li']]
        species.append(occupancy)
    rounded = Structure(disordered.lattice, species, disordered.frac_coords)
    rounded.add_oxidation_state_by_element({'Li': 1, 'Ge': 4, 'P': 5, 'S': -2})
    best = OrderDisorderedStructureTransformation(algo=2).apply_transformation(rounded, return_ranked_list=1)
    ordered = best[0]['structure']
    ordered.remove_oxidation_states()
    ordered = Structure(ordered.lattice, [site.specie for site in ordered], ordered.frac_coords).get_sorted_structure()
    return ordered


if __name__ == '__main__':
    target = Path(sys.argv[1] if len(sys.argv) > 1 else 'Li10GeP2S12.cif')
    structure = ordered_lgps()
    CifWriter(structure).write_file(target)
    print(f'{structure.composition.reduced_formula}: {len(structure)} atoms -> {target}')
