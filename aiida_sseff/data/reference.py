"""``sseff.reference.surrogate``: a surrogate model used as the reference of a labelling, as a node of its own.

A dataset labelled by a surrogate is only as good as the model that labelled it, so that model is in the provenance
graph as itself: package, version, model name and the sha256 of its weights, stored once and used as an input of
every :class:`~aiida_sseff.calculations.engine.EngineLabelCalculation` it drives. Which datasets came from which
reference is then a QueryBuilder question (docs/user/labelling.md).

- CHGNet: its pretrained weights ship inside the ``chgnet`` wheel; the sha256 is that of the checkpoint file that
  ``CHGNetCalculator()`` loads (``chgnet/pretrained/<version>/*.pth.tar``), found without importing chgnet (torch).
- NEP, MACE: the model node's own ``sha256``; the package is the one that evaluates it (calorine, mace-torch).
- EMT: ASE's toy potential, no weights (sha256 None): for tests only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from aiida import orm

__all__ = ['CHGNET_DEFAULT_MODEL', 'ReferenceError', 'SurrogateReference', 'chgnet_weights']

#: the model that ``CHGNetCalculator()`` loads without a ``model_name`` (chgnet.model.model.CHGNet.load)
CHGNET_DEFAULT_MODEL = '0.3.0'

_PACKAGES = {'chgnet': 'chgnet', 'nep': 'calorine', 'mace': 'mace-torch', 'emt': 'ase'}
_ATTRIBUTES = ('kind', 'package', 'version', 'model_name', 'weights_sha256')


class ReferenceError(ValueError):  # noqa: A001 - the module's own error, not the builtin
    """The reference cannot be described (its package or weights are missing)."""


def _package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def chgnet_weights(model_name: str = CHGNET_DEFAULT_MODEL) -> Path:
    """The checkpoint file of a pretrained CHGNet in the installed wheel (the file ``CHGNet.load`` reads)."""
    spec = importlib.util.find_spec('chgnet')
    if spec is None or not spec.submodule_search_locations:
        raise ReferenceError('chgnet is not installed: the CHGNet reference cannot be described')
    folder = Path(next(iter(spec.submodule_search_locations))) / 'pretrained' / model_name
    files = sorted(folder.glob('*.pth.tar'))
    if len(files) != 1:
        raise ReferenceError(f'expected one CHGNet checkpoint in {folder}, found {len(files)}')
    return files[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class SurrogateReference(orm.Data):
    """A surrogate reference model: ``kind``, ``package``, ``version``, ``model_name``, ``weights_sha256``."""

    def __init__(self, kind: str | None = None, package: str | None = None, version: str | None = None,
                 model_name: str | None = None, weights_sha256: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if kind is not None:
            for key, value in zip(_ATTRIBUTES, (kind, package, version, model_name, weights_sha256), strict=True):
                self.base.attributes.set(key, value)

    @classmethod
    def describe(cls, calculator: dict, model=None) -> dict:
        """The attributes of the reference that the engine's calculator spec ``calculator`` (and ``model``) gives."""
        kind = calculator.get('kind')
        if kind not in _PACKAGES:
            raise ReferenceError(f'calculator kind `{kind}` unknown; choose one of {", ".join(_PACKAGES)}')
        package = _PACKAGES[kind]
        if kind == 'chgnet':
            model_name, sha256 = f'CHGNet {CHGNET_DEFAULT_MODEL}', _sha256(chgnet_weights())
        elif kind in ('nep', 'mace'):
            if model is None:
                raise ReferenceError(f'calculator kind `{kind}` needs its model node to be described')
            model_name, sha256 = model.label or model.filename, model.sha256
        else:
            model_name, sha256 = 'EMT', None
        return {'kind': kind, 'package': package, 'version': _package_version(package), 'model_name': model_name,
                'weights_sha256': sha256}

    @classmethod
    def get_or_create(cls, calculator: dict, model=None) -> SurrogateReference:
        """The stored node of this reference (same kind, package, version, model and weights), or a new one stored:
        one node per reference, so that all the datasets it labelled hang from it."""
        attributes = cls.describe(calculator, model)
        filters = {f'attributes.{key}': value for key, value in attributes.items() if value is not None}
        for node in orm.QueryBuilder().append(cls, filters=filters, project='*').all(flat=True):
            if all(node.base.attributes.get(key, None) == value for key, value in attributes.items()):
                return node
        return cls(**attributes).store()

    @property
    def kind(self) -> str:
        return self.base.attributes.get('kind')

    @property
    def package(self) -> str:
        return self.base.attributes.get('package')

    @property
    def version(self) -> str | None:
        return self.base.attributes.get('version')

    @property
    def model_name(self) -> str:
        return self.base.attributes.get('model_name')

    @property
    def weights_sha256(self) -> str | None:
        return self.base.attributes.get('weights_sha256')

    def matches(self, calculator: dict, model=None) -> str | None:
        """None when this node describes ``calculator`` (and ``model``); otherwise a sentence saying what differs."""
        if calculator.get('kind') != self.kind:
            return f'the reference is of kind `{self.kind}`, the calculator kind is `{calculator.get("kind")}`'
        if model is not None and self.weights_sha256 != model.sha256:
            return (f'the reference weights (sha256 {str(self.weights_sha256)[:12]}...) are not those of the model '
                    f'<{model.pk}> (sha256 {model.sha256[:12]}...)')
        return None
