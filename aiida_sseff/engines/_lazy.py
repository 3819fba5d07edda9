"""Import a module without running the ``__init__`` of the packages above it, for the engine's start-up time.

Why: ``calorine.calculators.cpunep`` needs ``calorine.nep.model``, but importing it runs ``calorine/nep/__init__.py``,
which imports calorine's training set-up (scikit-learn, ~1 s of CPU at start-up); ASE's integrators need
``ase.optimize.optimize``, whose package ``__init__`` imports every optimiser (scipy.optimize, ~0.6 s), and
``ase/md/__init__.py`` imports every integrator (scipy.special), and ``ase/dft/__init__.py`` (reached from ``ase.io``
through ``ase.lattice``, which needs only ``ase.dft.kpoints``) imports scipy.integrate. The engine program uses none
of those. While the
module is imported, each named package is a bare module object with the package's ``__path__`` (so its submodules are
found); afterwards the bare objects are removed from ``sys.modules`` again, so that a later ordinary
``import calorine.nep`` runs the real ``__init__`` (and finds the submodules already loaded). Where the packages are
already imported, or anything fails, this is an ordinary import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def import_without_package_inits(module: str, packages: tuple[str, ...]):
    """``importlib.import_module(module)`` with the ``__init__`` of each of ``packages`` skipped during the import."""
    if module in sys.modules:
        return sys.modules[module]
    added = []
    try:
        for package in packages:
            if package in sys.modules:
                continue
            spec = importlib.util.find_spec(package)  # imports the parents of `package`, not `package` itself
            if spec is None or spec.submodule_search_locations is None:
                continue
            bare = types.ModuleType(package)
            bare.__path__ = list(spec.submodule_search_locations)
            bare.__spec__ = spec
            sys.modules[package] = bare
            parent, _, child = package.rpartition('.')
            if parent in sys.modules:  # `import a.b.c` followed by `a.b.c.x` must work while the stub is there
                setattr(sys.modules[parent], child, bare)
            added.append((package, bare))
        return importlib.import_module(module)
    except ImportError:
        _remove(added)
        added.clear()
        return importlib.import_module(module)
    finally:
        _remove(added)


def _remove(added: list) -> None:
    """Take the bare package objects out of ``sys.modules`` and off their parents again."""
    for package, bare in added:
        if sys.modules.get(package) is bare:
            del sys.modules[package]
        parent, _, child = package.rpartition('.')
        if getattr(sys.modules.get(parent), child, None) is bare:
            delattr(sys.modules[parent], child)


def cpunep_class():
    """calorine's ``CPUNEP`` calculator class, without calorine's training modules."""
    return import_without_package_inits('calorine.calculators.cpunep',
                                        ('calorine.calculators', 'calorine.nep')).CPUNEP


#: The ASE packages whose ``__init__`` the engine skips (see the module docstring).
ASE_SKIPPED = ('ase.md', 'ase.optimize', 'ase.dft')


def ase_integrator(module: str, name: str):
    """An ASE integrator class (``module`` e.g. ``'ase.md.bussi'``), without importing every optimiser/integrator."""
    return getattr(import_without_package_inits(module, ASE_SKIPPED), name)


def ase_io():
    """``ase.io``, without ``ase.dft``'s package ``__init__``."""
    return import_without_package_inits('ase.io', ASE_SKIPPED)
