"""Import a module without running the ``__init__`` of the packages above it, for the engine's start-up time.

Why: ``calorine.calculators.cpunep`` needs ``calorine.nep.model``, but importing it runs ``calorine/nep/__init__.py``,
which imports calorine's training set-up (scikit-learn, ~1 s of CPU at start-up); ASE's integrators need
``ase.optimize.optimize``, whose package ``__init__`` imports every optimiser (scipy.optimize, ~0.6 s), and
``ase/md/__init__.py`` imports every integrator (scipy.special), and ``ase/dft/__init__.py`` (reached from ``ase.io``
through ``ase.lattice``, which needs only ``ase.dft.kpoints``) imports scipy.integrate. ``ase/io/__init__.py``
imports every trajectory format, and through them ``ase.constraints`` -> ``ase.spacegroup``, whose ``__init__``
imports ``ase.spacegroup.xtal`` and with it scipy.spatial (~0.45 s); the extxyz reader needs only
``ase.spacegroup.spacegroup``. ``calorine.nep.model`` imports ``calorine.nep.io`` (pandas, ~0.35 s) for one function,
``write_nepfile``, that writes a model file: the engine never calls it, so while the model module is imported a
stand-in ``calorine.nep.io`` offers a ``write_nepfile`` that imports the real module when it is called. The engine
program uses none of those. While the
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


def _forwarding_module(name: str, functions: tuple[str, ...]) -> types.ModuleType:
    """A stand-in for module ``name`` whose ``functions`` import the real module when first called, and call it."""
    stand_in = types.ModuleType(name)

    def forwarder(function: str):
        def call(*args, **kwargs):
            return getattr(importlib.import_module(name), function)(*args, **kwargs)

        call.__name__ = call.__qualname__ = function
        call.__doc__ = f'``{name}.{function}``, imported when first called (see aiida_sseff.engines._lazy).'
        return call

    for function in functions:
        setattr(stand_in, function, forwarder(function))
    return stand_in


def import_without_package_inits(module: str, packages: tuple[str, ...], stand_ins: dict | None = None):
    """``importlib.import_module(module)`` with the ``__init__`` of each of ``packages`` skipped during the import,
    and each module ``name`` of ``stand_ins`` (``{name: (function, ...)}``) replaced by a forwarding stand-in."""
    if module in sys.modules:
        return sys.modules[module]
    added = []
    try:
        for name, functions in (stand_ins or {}).items():
            if name not in sys.modules:
                stand_in = _forwarding_module(name, functions)
                sys.modules[name] = stand_in
                added.append((name, stand_in))
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


#: calorine's model module imports ``calorine.nep.io`` (pandas) only for this function (see the module docstring).
CALORINE_STAND_INS = {'calorine.nep.io': ('write_nepfile',)}


def calorine_model():
    """``calorine.nep.model`` (``read_model``), without calorine's training modules or pandas."""
    return import_without_package_inits('calorine.nep.model', ('calorine.nep',), CALORINE_STAND_INS)


def cpunep_class():
    """calorine's ``CPUNEP`` calculator class, without calorine's training modules or pandas."""
    return import_without_package_inits('calorine.calculators.cpunep', ('calorine.calculators', 'calorine.nep'),
                                        CALORINE_STAND_INS).CPUNEP


#: The ASE packages whose ``__init__`` the engine skips (see the module docstring).
ASE_SKIPPED = ('ase.md', 'ase.optimize', 'ase.dft', 'ase.io', 'ase.spacegroup')


def ase_integrator(module: str, name: str):
    """An ASE integrator class (``module`` e.g. ``'ase.md.bussi'``), without importing every optimiser/integrator."""
    return getattr(import_without_package_inits(module, ASE_SKIPPED), name)


def ase_io():
    """ASE's ``read`` and ``write`` (the module ``ase.io.formats``) with the extxyz format loaded, without the package
    ``__init__`` of ``ase.io`` (every trajectory format) and of ``ase.spacegroup`` (scipy.spatial).

    The extxyz module is imported here, while the packages are skipped: ``read``/``write`` import a format's module
    when first used, which would otherwise run those ``__init__`` files then.
    """
    import_without_package_inits('ase.io.extxyz', ASE_SKIPPED)
    return import_without_package_inits('ase.io.formats', ASE_SKIPPED)
