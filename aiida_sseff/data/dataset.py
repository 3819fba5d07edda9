"""``sseff.dataset``: a set of structures with reference labels, stored as one extended-XYZ file in the node repository."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from aiida import orm
from aiida.engine import calcfunction
from ase import Atoms

from aiida_sseff.io.structures import (
    DatasetValidationError,
    read_extxyz,
    sha256_bytes,
    summarise,
    validate_structures,
    write_extxyz_bytes,
)

__all__ = ['DatasetValidationError', 'LabelledDataset', 'merge_datasets', 'subset_dataset']


class LabelledDataset(orm.Data):
    """Structures with energies (eV), forces (eV/Å) and optional stress (eV/Å³, ASE sign), as one extxyz file.

    Attributes (queryable): ``n_structures``, ``n_atoms``, ``elements``, ``has_labels``, ``has_virial``,
    ``config_types`` (counts), ``sha256`` (of the stored file), ``filename``.
    Per-structure ``config_type`` and ``weight`` travel in the extxyz comment line.
    """

    FILENAME = 'dataset.xyz'

    def __init__(self, structures: Sequence[Atoms] | None = None, require_labels: bool = True, **kwargs):
        """:param structures: ASE atoms carrying labels (calculator results, or ``info``/``arrays`` entries).
        :param require_labels: set False for candidate structures awaiting labels (sampling output).
        :raises DatasetValidationError: naming the index of the first bad structure.
        """
        super().__init__(**kwargs)
        if structures is not None:
            self.set_structures(structures, require_labels=require_labels)

    def set_structures(self, structures: Sequence[Atoms], require_labels: bool = True) -> None:
        checked = validate_structures(structures, require_labels=require_labels)
        content = write_extxyz_bytes(checked)
        self.base.repository.put_object_from_bytes(content, self.FILENAME)
        for key, value in summarise(checked).items():
            self.base.attributes.set(key, value)
        self.base.attributes.set('sha256', sha256_bytes(content))
        self.base.attributes.set('filename', self.FILENAME)

    # --- constructors -------------------------------------------------------------------------------------------------
    @classmethod
    def from_ase(cls, structures: Iterable[Atoms], require_labels: bool = True) -> LabelledDataset:
        return cls(list(structures), require_labels=require_labels)

    @classmethod
    def from_file(cls, path: str | Path, require_labels: bool = True, format: str | None = None) -> LabelledDataset:
        """Read any file ASE reads (extxyz, OUTCAR, vasprun.xml, ...) with all its frames."""
        from ase.io import read
        from ase.io.formats import UnknownFileTypeError

        path = Path(path)
        if not path.exists():
            raise DatasetValidationError(f'structure file `{path}` does not exist')
        if path.is_dir():
            raise DatasetValidationError(f'`{path}` is a directory; expected a structure file that ASE reads '
                                         '(extxyz, OUTCAR, vasprun.xml, ...)')
        try:
            structures = read(str(path), index=':', format=format)
        except UnknownFileTypeError as exception:
            raise DatasetValidationError(
                f'cannot read `{path}`: ASE does not recognise its format ({exception}); expected a structure file '
                'that ASE reads (extxyz, OUTCAR, vasprun.xml, ...), or name the format') from exception
        except Exception as exception:  # ASE raises many types; the user needs the file name and the reason
            raise DatasetValidationError(f'cannot read `{path}`: {exception}') from exception
        if not structures:
            raise DatasetValidationError(f'`{path}` holds no structure')
        return cls(structures, require_labels=require_labels)

    @classmethod
    def from_pymatgen(
        cls, structures, energies=None, forces=None, stresses=None, require_labels: bool = True
    ) -> LabelledDataset:
        """From pymatgen ``Structure`` objects and, optionally, labels given as parallel lists (eV, eV/Å, eV/Å³).

        Labels may also come from ``structure.properties['energy'|'stress']`` and ``site_properties['forces']``.
        """
        from pymatgen.io.ase import AseAtomsAdaptor

        from aiida_sseff.io.structures import attach_labels

        atoms_list = []
        for index, structure in enumerate(structures):
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.calc = None
            props = getattr(structure, 'properties', {}) or {}
            energy = energies[index] if energies is not None else props.get('energy')
            force = forces[index] if forces is not None else structure.site_properties.get('forces')
            stress = stresses[index] if stresses is not None else props.get('stress')
            for key in list(atoms.arrays):
                if key not in ('numbers', 'positions'):
                    del atoms.arrays[key]
            attach_labels(atoms, energy=energy, forces=force, stress=stress)
            atoms_list.append(atoms)
        return cls(atoms_list, require_labels=require_labels)

    # --- accessors ----------------------------------------------------------------------------------------------------
    def get_content(self) -> bytes:
        return self.base.repository.get_object_content(self.FILENAME, mode='rb')

    def get_ase(self) -> list[Atoms]:
        """The structures as ASE atoms; labels are SinglePointCalculator results."""
        return read_extxyz(self.get_content())

    def get_pymatgen(self) -> list:
        """The structures as pymatgen ``Structure`` with ``properties`` energy/stress and site property forces."""
        from pymatgen.io.ase import AseAtomsAdaptor

        result = []
        for atoms in self.get_ase():
            calc = atoms.calc
            results = dict(calc.results) if calc is not None else {}
            atoms.calc = None
            structure = AseAtomsAdaptor.get_structure(atoms)
            if 'energy' in results:
                structure.properties['energy'] = results['energy']
            if 'stress' in results:
                structure.properties['stress'] = results['stress']
            if 'forces' in results:
                structure.add_site_property('forces', results['forces'].tolist())
            result.append(structure)
        return result

    def write(self, path: str | Path) -> Path:
        """Write the stored extxyz file, byte for byte."""
        path = Path(path)
        path.write_bytes(self.get_content())
        return path

    def __len__(self) -> int:
        return self.base.attributes.get('n_structures', 0)

    @property
    def n_structures(self) -> int:
        return self.base.attributes.get('n_structures')

    @property
    def n_atoms(self) -> int:
        return self.base.attributes.get('n_atoms')

    @property
    def elements(self) -> list[str]:
        return self.base.attributes.get('elements')

    @property
    def has_labels(self) -> bool:
        return self.base.attributes.get('has_labels')

    @property
    def has_virial(self) -> bool:
        return self.base.attributes.get('has_virial')

    @property
    def sha256(self) -> str:
        return self.base.attributes.get('sha256')

    def subset(self, indices: Sequence[int]) -> LabelledDataset:
        """The structures at ``indices`` (in that order), through a calcfunction so the selection is in provenance."""
        return subset_dataset(self, orm.List(list(map(int, indices))))

    def merge(self, *others: LabelledDataset) -> LabelledDataset:
        """This set followed by ``others``, labels kept, through the calcfunction :func:`merge_datasets`."""
        parts = (self, *others)
        return merge_datasets(**{f'part_{index:03d}': dataset for index, dataset in enumerate(parts)})


@calcfunction
def subset_dataset(dataset: LabelledDataset, indices: orm.List) -> LabelledDataset:
    """Select structures by index; the output keeps the parent's labels unchanged."""
    structures = dataset.get_ase()
    selected = indices.get_list()
    if not selected:
        raise DatasetValidationError('the selection is empty')
    bad = [i for i in selected if not -len(structures) <= i < len(structures)]
    if bad:
        raise DatasetValidationError(f'indices {bad} out of range for a set of {len(structures)} structures')
    return LabelledDataset([structures[i] for i in selected], require_labels=dataset.has_labels)


@calcfunction
def merge_datasets(drop_labels: orm.Bool | None = None, **datasets: LabelledDataset) -> LabelledDataset:
    """The structures of all ``datasets``, in the sorted order of their link labels.

    The one merge of datasets (:func:`aiida_sseff.analysis.sampling.merge_structures` does the work):
    :meth:`LabelledDataset.merge` passes ``part_000``, ``part_001``, ... and keeps the labels; the sampling work
    chain passes its sources (``md_T00600K``, ``rattles``, ...) with ``drop_labels`` True, which makes candidates
    (labels removed, ``info['candidate_source']`` = link label).
    """
    from aiida_sseff.analysis.sampling import merge_structures

    if not datasets:
        raise DatasetValidationError('nothing to merge: give at least one dataset')
    drop = bool(drop_labels.value) if drop_labels is not None else False
    structures = merge_structures({key: dataset.get_ase() for key, dataset in datasets.items()}, drop_labels=drop)
    require_labels = not drop and all(dataset.has_labels for dataset in datasets.values())
    return LabelledDataset(structures, require_labels=require_labels)
