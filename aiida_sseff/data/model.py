"""``sseff.model.nep`` and ``sseff.model.mace``: trained force-field files with their architecture as attributes."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from aiida import orm

__all__ = ['MaceModel', 'ModelFileError', 'NepModel']


class ModelFileError(ValueError):
    """A model file that cannot be used (corrupt, truncated, unsupported)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_nep_attributes(path: str | Path) -> dict:
    """Read a ``nep.txt`` with calorine and return its architecture as plain attributes.

    calorine checks the header and the parameter count, so a truncated or corrupt file fails here.
    """
    from calorine.nep import read_model

    path = Path(path)
    try:
        model = read_model(str(path))
    except Exception as exception:  # calorine raises ValueError/IndexError/... depending on where the file breaks
        raise ModelFileError(f'`{path.name}` is not a readable NEP model: {exception}') from exception
    with path.open() as handle:
        header = handle.readline().split()
    n_numbers = sum(1 for line in path.read_text().splitlines() if _is_number(line))
    if n_numbers < model.n_parameters:
        raise ModelFileError(
            f'`{path.name}` is truncated: {n_numbers} parameters stored, the architecture needs {model.n_parameters}'
        )
    return {
        'model_header': header[0] if header else '',
        'version': int(model.version),
        'model_type': model.model_type,
        'elements': list(model.types),
        'radial_cutoff': float(model.radial_cutoff),
        'angular_cutoff': float(model.angular_cutoff),
        'n_max': [int(model.n_max_radial), int(model.n_max_angular)],
        'basis_size': [int(model.n_basis_radial), int(model.n_basis_angular)],
        'l_max': [int(model.l_max_3b), int(model.l_max_4b), int(model.l_max_5b)],
        'n_neuron': int(model.n_neuron),
        'n_parameters': int(model.n_parameters),
        'zbl': list(model.zbl) if model.zbl else None,
        'charge_mode': int(getattr(model, 'charge_mode', 0) or 0),
    }


def _is_number(line: str) -> bool:
    parts = line.split()
    if len(parts) != 1:
        return False
    try:
        float(parts[0])
    except ValueError:
        return False
    return True


class _ModelFile(orm.SinglefileData):
    """Common behaviour: one file, its sha256, and an ASE calculator built from it."""

    def _set_common(self) -> None:
        with self.as_path() as path:
            self.base.attributes.set('sha256', _sha256(Path(path)))

    @property
    def elements(self) -> list[str]:
        return self.base.attributes.get('elements')

    @property
    def sha256(self) -> str:
        return self.base.attributes.get('sha256')

    def export_file(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.get_content(mode='rb'))
        return path


class NepModel(_ModelFile):
    """A NEP potential (``nep.txt`` of GPUMD ``nep`` or ``neppo``), architecture read by calorine.

    Attributes: ``version``, ``model_type``, ``elements``, ``radial_cutoff``, ``angular_cutoff``, ``n_max``,
    ``basis_size``, ``l_max``, ``n_neuron``, ``n_parameters``, ``zbl``, ``charge_mode``, ``sha256``.
    """

    DEFAULT_FILENAME = 'nep.txt'

    def __init__(self, file=None, filename: str | None = None, **kwargs):
        if file is not None:
            path = Path(file) if isinstance(file, str | Path) else None
            if path is None:
                raise TypeError('NepModel takes the path of a nep.txt file')
            if not path.is_file():
                raise ModelFileError(f'no NEP model file at `{path}`')
            attributes = read_nep_attributes(path)
            super().__init__(file=str(path), filename=filename or self.DEFAULT_FILENAME, **kwargs)
            for key, value in attributes.items():
                self.base.attributes.set(key, value)
            self._set_common()
        else:
            super().__init__(**kwargs)

    @property
    def cutoff(self) -> tuple[float, float]:
        return self.base.attributes.get('radial_cutoff'), self.base.attributes.get('angular_cutoff')

    def get_calculator(self):
        """A calorine CPUNEP calculator for this model (CPU, any cell shape)."""
        from calorine.calculators import CPUNEP

        # CPUNEP reads from a path; the repository may not be on a file system, so a private copy is made.
        directory = Path(tempfile.mkdtemp(prefix='sseff-nep-'))
        path = self.export_file(directory / self.DEFAULT_FILENAME)
        return CPUNEP(str(path))


class MaceModel(_ModelFile):
    """A MACE model file (``*.model``, a pickled torch module) with its architecture as attributes.

    Architecture attributes are read from the model when mace-torch is installed (``r_max``, ``num_interactions``,
    ``atomic_numbers`` → ``elements``, ``hidden_irreps``, ``correlation``) and may be given explicitly otherwise.
    """

    DEFAULT_FILENAME = 'model.model'

    def __init__(self, file=None, filename: str | None = None, architecture: dict | None = None, **kwargs):
        if file is not None:
            path = Path(file)
            if not path.is_file():
                raise ModelFileError(f'no MACE model file at `{path}`')
            attributes = dict(architecture or {})
            attributes.update({k: v for k, v in read_mace_attributes(path).items() if k not in attributes})
            if not attributes.get('elements'):
                raise ModelFileError(
                    f'cannot tell the elements of `{path.name}`: install mace-torch or pass architecture={{"elements": ...}}'
                )
            super().__init__(file=str(path), filename=filename or self.DEFAULT_FILENAME, **kwargs)
            for key, value in attributes.items():
                self.base.attributes.set(key, value)
            self._set_common()
        else:
            super().__init__(**kwargs)

    @property
    def cutoff(self) -> float | None:
        return self.base.attributes.get('r_max', None)

    def get_calculator(self, device: str = 'cpu', default_dtype: str = 'float64'):
        from aiida_sseff.compat import import_mace

        import_mace()
        from mace.calculators import MACECalculator

        directory = Path(tempfile.mkdtemp(prefix='sseff-mace-'))
        path = self.export_file(directory / self.DEFAULT_FILENAME)
        return MACECalculator(model_paths=str(path), device=device, default_dtype=default_dtype)


def read_mace_attributes(path: str | Path) -> dict:
    """Architecture of a MACE model file, when mace-torch and torch are importable; {} otherwise."""
    try:
        import torch
        from ase.data import chemical_symbols

        from aiida_sseff.compat import import_mace

        import_mace()  # unpickling the module imports mace and e3nn: through the torch 2.13 fix
    except ImportError:
        return {}
    try:
        model = torch.load(str(path), map_location='cpu', weights_only=False)
    except ImportError:
        return {}  # mace-torch is needed to unpickle the module
    except Exception as exception:
        raise ModelFileError(f'`{Path(path).name}` is not a readable MACE model: {exception}') from exception
    attributes: dict = {}
    if hasattr(model, 'r_max'):
        attributes['r_max'] = float(model.r_max)
    if hasattr(model, 'num_interactions'):
        attributes['num_interactions'] = int(model.num_interactions)
    if hasattr(model, 'atomic_numbers'):
        attributes['elements'] = [chemical_symbols[int(z)] for z in model.atomic_numbers]
    interactions = getattr(model, 'interactions', None)
    if interactions is not None and len(interactions) > 0:
        attributes['hidden_irreps'] = str(getattr(interactions[0], 'hidden_irreps', ''))
    products = getattr(model, 'products', None)
    if products is not None and len(products) > 0:
        contraction = getattr(products[0], 'symmetric_contractions', None)
        if contraction is not None and hasattr(contraction, 'contractions'):
            attributes['correlation'] = int(getattr(contraction.contractions[0], 'correlation', 0))
    attributes['model_class'] = type(model).__name__
    return attributes
