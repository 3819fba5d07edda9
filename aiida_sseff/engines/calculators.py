"""Build an ASE calculator from a small JSON-able spec, so MD, labelling and locality runs are model-agnostic.

Spec keys: ``kind`` (``chgnet`` | ``nep`` | ``mace`` | ``emt``), ``model`` (file name of the model for nep/mace,
relative to the working directory), ``device`` (``cpu`` default; ``cuda`` for MACE/CHGNet on a GPU node).
``emt`` is ASE's effective-medium toy potential for a few metals: for tests only, never for SSE physics.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ('chgnet', 'nep', 'mace', 'emt')

# EMT in ASE knows these elements only (ase.calculators.emt.parameters).
EMT_ELEMENTS = ('H', 'C', 'N', 'O', 'Al', 'Ni', 'Cu', 'Pd', 'Ag', 'Pt', 'Au')
# CHGNet 0.3.0 was trained on the Materials Project trajectory set, elements Z = 1..94.
CHGNET_MAX_Z = 94


class UnknownElementError(ValueError):
    """The structure holds an element the model was not trained on."""


class CalculatorSpecError(ValueError):
    """The calculator spec is not valid."""


def validate_spec(spec: dict) -> dict:
    """Normalise a calculator spec and raise ``CalculatorSpecError`` naming the problem."""
    if not isinstance(spec, dict):
        raise CalculatorSpecError(f'calculator spec must be a dict, got {type(spec).__name__}')
    kind = spec.get('kind')
    if kind not in KINDS:
        raise CalculatorSpecError(f'calculator kind `{kind}` unknown; choose one of {", ".join(KINDS)}')
    unknown = set(spec) - {'kind', 'model', 'device', 'dtype'}
    if unknown:
        raise CalculatorSpecError(f'unknown calculator spec keys: {sorted(unknown)}')
    if kind in ('nep', 'mace') and not spec.get('model'):
        raise CalculatorSpecError(f'calculator kind `{kind}` needs a model file')
    if kind in ('chgnet', 'emt') and spec.get('model'):
        raise CalculatorSpecError(f'calculator kind `{kind}` takes no model file')
    normalised = {'kind': kind, 'device': spec.get('device', 'cpu')}
    if spec.get('model'):
        normalised['model'] = str(spec['model'])
    if spec.get('dtype'):
        normalised['dtype'] = spec['dtype']
    return normalised


def model_elements(spec: dict, directory: str | Path = '.') -> list[str] | None:
    """The elements the model knows, or None where it knows (nearly) all (CHGNet up to Pu)."""
    kind = spec['kind']
    if kind == 'nep':
        from aiida_sseff.engines._lazy import calorine_model

        return list(calorine_model().read_model(str(Path(directory) / spec['model'])).types)
    if kind == 'emt':
        return list(EMT_ELEMENTS)
    if kind == 'chgnet':
        from ase.data import chemical_symbols

        return list(chemical_symbols[1 : CHGNET_MAX_Z + 1])
    if kind == 'mace':
        import torch
        from ase.data import chemical_symbols

        from aiida_sseff.compat import import_mace

        import_mace()
        # a MACE model file is a pickled torch module; its z table is `atomic_numbers`
        model = torch.load(str(Path(directory) / spec['model']), map_location='cpu', weights_only=False)
        return [chemical_symbols[int(z)] for z in model.atomic_numbers]
    return None


def check_elements(symbols, spec: dict, directory: str | Path = '.') -> None:
    known = model_elements(spec, directory)
    if known is None:
        return
    missing = sorted(set(symbols) - set(known))
    if missing:
        raise UnknownElementError(
            f'the {spec["kind"]} model does not know the element(s) {", ".join(missing)} (it knows {", ".join(known)})'
        )


def torch_threads_from_environment() -> int | None:
    """Set torch's CPU threads to ``OMP_NUM_THREADS`` (what the CalcJob's submit script set from the job's
    resources, :mod:`aiida_sseff.calculations.threads`) and return it; None where the variable is not set (torch's
    own default then: one thread per core). torch reads the variable too, but only when its thread pool starts, and
    a library imported before could have started it already: setting it explicitly leaves no doubt."""
    import os

    value = os.environ.get('OMP_NUM_THREADS', '').strip()
    if not value.isdigit() or int(value) < 1:
        return None
    import torch

    torch.set_num_threads(int(value))
    return int(value)


def make_calculator(spec: dict, directory: str | Path = '.'):
    """Return an ASE calculator for the spec; model files are looked up in ``directory``."""
    spec = validate_spec(spec)
    kind = spec['kind']
    directory = Path(directory)
    if kind in ('chgnet', 'mace'):
        torch_threads_from_environment()
    if kind == 'chgnet':
        import warnings

        from chgnet.model.dynamics import CHGNetCalculator

        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            # The pretrained weights ship inside the chgnet wheel: no download at run time.
            return CHGNetCalculator(use_device=spec['device'], on_isolated_atoms='ignore')
    if kind == 'nep':
        from aiida_sseff.engines._lazy import cpunep_class

        return cpunep_class()(str(directory / spec['model']))
    if kind == 'mace':
        from aiida_sseff.compat import import_mace

        import_mace()  # the torch 2.13 / e3nn import fix, before any mace import
        from mace.calculators import MACECalculator

        return MACECalculator(
            model_paths=str(directory / spec['model']),
            device=spec['device'],
            default_dtype=spec.get('dtype', 'float64'),
        )
    from ase.calculators.emt import EMT

    return EMT()
