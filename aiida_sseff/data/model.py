"""``sseff.model.nep`` and ``sseff.model.mace``: trained force-field files with their architecture as attributes."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from aiida import orm

__all__ = ['MaceModel', 'ModelFileError', 'NepModel', 'UnsafeModelFileError', 'load_torch_file']


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

    The file is read with ``torch.load(weights_only=True)`` and only the classes of MACE, e3nn and torch.nn allowed
    (:func:`load_torch_file`): a file that asks for anything else is refused unless ``allow_pickle=True``.
    Architecture attributes are read from the model when mace-torch is installed (``r_max``, ``num_interactions``,
    ``atomic_numbers`` → ``elements``, ``hidden_irreps``, ``correlation``) and may be given explicitly otherwise.
    """

    DEFAULT_FILENAME = 'model.model'

    def __init__(self, file=None, filename: str | None = None, architecture: dict | None = None,
                 allow_pickle: bool = False, **kwargs):
        """:param allow_pickle: read the architecture from a full pickle (``torch.load(weights_only=False)``, which
            runs any code the file holds); by default only what a weights-only load rebuilds is read."""
        if file is not None:
            path = Path(file)
            if not path.is_file():
                raise ModelFileError(f'no MACE model file at `{path}`')
            attributes = dict(architecture or {})
            read = read_mace_attributes(path, allow_pickle=allow_pickle)
            attributes.update({k: v for k, v in read.items() if k not in attributes})
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


#: modules whose *classes* may be rebuilt when a MACE model file is loaded with ``weights_only=True``: MACE's own
#: modules, e3nn's (irreps, tensor products) and torch's nn modules. Functions are never allowed, nor any other module
#: (``builtins``, ``os``, ``subprocess``, ...): torch's weights-only unpickler then cannot run code of the file's choice.
SAFE_GLOBAL_PREFIXES = ('mace.', 'e3nn.', 'torch.nn.modules.', 'torch.nn.parameter.')


class UnsafeModelFileError(ModelFileError):
    """A model file that only a full (code-executing) unpickling could load, which was not allowed."""


def _safe_globals(path: Path) -> list:
    """The classes the checkpoint names that are safe to rebuild (see :data:`SAFE_GLOBAL_PREFIXES`); raises
    :class:`UnsafeModelFileError` naming any other global the file asks for."""
    import importlib

    import torch

    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    allowed, refused = [], []
    for name in names:
        module_name, _, attribute = name.rpartition('.')
        if not name.startswith(SAFE_GLOBAL_PREFIXES):
            refused.append(name)
            continue
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            refused.append(name)
            continue
        if isinstance(value, type):
            allowed.append(value)
        else:
            refused.append(name)
    if refused:
        raise UnsafeModelFileError(
            f'`{path.name}` asks for {", ".join(sorted(refused)[:8])}{" ..." if len(refused) > 8 else ""}, which a '
            'weights-only load does not rebuild (unknown classes or functions: loading them runs code from the file). '
            'Load it only if you trust where it comes from: `--allow-pickle` (Python: allow_pickle=True).')
    return allowed


def load_torch_file(path: str | Path, allow_pickle: bool = False):
    """``torch.load`` of a model file on the CPU, with ``weights_only=True`` and only the safe globals it needs
    (:func:`_safe_globals`); ``allow_pickle=True`` loads a full pickle instead, with a warning: that can run any code
    the file holds."""
    import pickle
    import warnings

    import torch

    path = Path(path)
    if allow_pickle:
        warnings.warn(f'loading `{path.name}` as a full pickle (weights_only=False): this runs any code the file '
                      'holds; do so only for files you trust', UserWarning, stacklevel=2)
        return torch.load(str(path), map_location='cpu', weights_only=False)
    try:
        safe = _safe_globals(path)
        with torch.serialization.safe_globals(safe):
            return torch.load(str(path), map_location='cpu', weights_only=True)
    except UnsafeModelFileError:
        raise
    except pickle.UnpicklingError as exception:
        raise UnsafeModelFileError(f'`{path.name}` cannot be loaded with weights_only=True: {exception}. Load it only '
                                   'if you trust where it comes from: `--allow-pickle`') from exception


def read_mace_attributes(path: str | Path, allow_pickle: bool = False) -> dict:
    """Architecture of a MACE model file (a pickled module, or a checkpoint/state dict whose buffers ``r_max``,
    ``num_interactions`` and ``atomic_numbers`` MACE registers), read without running code from the file unless
    ``allow_pickle``; {} where torch is not installed."""
    try:
        import torch  # noqa: F401
        from ase.data import chemical_symbols

        from aiida_sseff.compat import import_mace

        import_mace()  # unpickling the module imports mace and e3nn: through the torch 2.13 fix
    except ImportError:
        return {}
    try:
        model = load_torch_file(path, allow_pickle=allow_pickle)
    except UnsafeModelFileError:
        raise
    except ImportError:
        return {}  # mace-torch is needed to unpickle the module
    except Exception as exception:
        raise ModelFileError(f'`{Path(path).name}` is not a readable MACE model: {exception}') from exception
    if isinstance(model, dict):
        return _state_dict_attributes(model.get('model', model), chemical_symbols)
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


def _state_dict_attributes(state: dict, chemical_symbols) -> dict:
    """The buffers MACE registers (``r_max``, ``num_interactions``, ``atomic_numbers``) from a state dict."""
    attributes: dict = {}
    if not isinstance(state, dict):
        return attributes
    if 'r_max' in state:
        attributes['r_max'] = float(state['r_max'])
    if 'num_interactions' in state:
        attributes['num_interactions'] = int(state['num_interactions'])
    if 'atomic_numbers' in state:
        attributes['elements'] = [chemical_symbols[int(z)] for z in state['atomic_numbers']]
    attributes['model_class'] = 'state_dict'
    return attributes
