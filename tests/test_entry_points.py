"""Every ``sseff.*`` entry point registered in setup.cfg loads and is of the kind its group promises."""

from importlib.metadata import entry_points

import pytest

GROUPS = {
    'aiida.data': 'aiida.orm.Data',
    'aiida.calculations': 'aiida.engine.CalcJob',
    'aiida.parsers': 'aiida.parsers.Parser',
    'aiida.workflows': 'aiida.engine.WorkChain',
}


def _sseff(group):
    return [ep for ep in entry_points(group=group) if ep.name.startswith('sseff.')]


@pytest.mark.parametrize('group', sorted(GROUPS))
def test_entry_points_load(group):
    import importlib

    module, name = GROUPS[group].rsplit('.', 1)
    base = getattr(importlib.import_module(module), name)
    found = _sseff(group)
    assert found, f'no sseff entry points in {group}: is the package installed (pip install -e .)?'
    for ep in found:
        loaded = ep.load()
        assert issubclass(loaded, base), f'{ep.name} -> {loaded} is not a {GROUPS[group]}'


def test_every_calculation_has_its_parser():
    calculations = {ep.name for ep in _sseff('aiida.calculations')}
    parsers = {ep.name for ep in _sseff('aiida.parsers')}
    assert calculations == parsers


def test_verdi_data_group_and_console_scripts():
    assert [ep.name for ep in entry_points(group='aiida.cmdline.data') if ep.name == 'sseff']
    scripts = {ep.name: ep for ep in entry_points(group='console_scripts')}
    assert scripts['aiida-sseff'].load().name == 'aiida-sseff'
    assert callable(scripts['aiida-sseff-engine'].load())
