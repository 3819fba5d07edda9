"""The QueryBuilder recipes of docs/user/queries.md, executed as written against nodes made here with the links the
WorkChains make (training → model/test_metrics, model → diffusion → results): recipes that are not run rot."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.links import LinkType
from plumpy import ProcessState

QUERIES = Path(__file__).resolve().parents[2] / 'docs' / 'user' / 'queries.md'


def recipes() -> dict[str, str]:
    """``{name: code}`` of the ```python blocks of queries.md that start with ``# recipe: name``."""
    blocks = re.findall(r'```python\n# recipe: ([\w-]+)\n(.*?)```', QUERIES.read_text(encoding='utf-8'), re.S)
    return dict(blocks)


def _finished_workflow(process_type: str, inputs: dict, outputs: dict, exit_status: int = 0):
    """A stored WorkflowNode of ``process_type`` with ``inputs`` and ``outputs`` (created by a calcfunction node and
    returned by the workflow), as a WorkChain leaves them."""
    node = orm.WorkflowNode()
    node.set_process_type(process_type)
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    for label, value in inputs.items():
        node.base.links.add_incoming(value if value.is_stored else value.store(), LinkType.INPUT_WORK, label)
    node.store()
    creator = orm.CalcFunctionNode()
    creator.set_process_state(ProcessState.FINISHED)
    creator.set_exit_status(0)
    creator.store()
    for label, value in outputs.items():
        value.base.links.add_incoming(creator, LinkType.CREATE, label)
        value.store()
        value.base.links.add_incoming(node, LinkType.RETURN, label)
    return node


def _model(name: str):
    from aiida_sseff.data.model import NepModel

    model = NepModel()  # the queries look at types and links only: a placeholder file, not a readable model
    model.set_file(io.BytesIO(f'placeholder model {name}'.encode()), filename='nep.txt')
    model.base.attributes.set('elements', ['Cu', 'Al'])
    model.label = name
    return model


def make_study_nodes(cu_al_structures) -> dict:
    """Four NEP trainings (force RMSE 90, 100, 120, 200 meV/Å) with one diffusion run each (Ea 0.31, 0.32, 0.40,
    0.45 eV; the first is the reference), a failed diffusion (exit 400) of the 100 meV/Å model with Ea 0.9 eV, and the
    200 meV/Å model trained on another dataset."""
    from aiida_sseff.data.dataset import LabelledDataset

    dataset = LabelledDataset.from_ase(cu_al_structures(2)).store()
    other = LabelledDataset.from_ase(cu_al_structures(2, seed=1)).store()
    nodes = {}
    for name, rmse, ea, data in (('R', 90.0, 0.31, dataset), ('A', 100.0, 0.32, dataset), ('B', 120.0, 0.40, dataset),
                                 ('C', 200.0, 0.45, other)):
        model = _model(name)
        _finished_workflow('aiida.workflows:sseff.train.nep', {'dataset': data},
                           {'model': model, 'test_metrics': orm.Dict({'force_mev_per_angstrom': rmse})})
        diffusion = _finished_workflow('aiida.workflows:sseff.diffusion', {'model': model},
                                       {'results': orm.Dict({'Ea_eV': ea, 'Ea_err_eV': 0.01})})
        nodes[name] = (model, diffusion)
    _finished_workflow('aiida.workflows:sseff.diffusion', {'model': nodes['A'][0]},
                       {'results': orm.Dict({'Ea_eV': 0.9, 'Ea_err_eV': 0.01})}, exit_status=400)
    return {'models': {name: model.uuid for name, (model, _) in nodes.items()}, 'reference': nodes['R'][1].uuid,
            'dataset_sha256': dataset.sha256}


def test_every_recipe_is_tested():
    assert set(recipes()) == {'accurate-models', 'ea-differs', 'models-of-dataset'}


def test_query_recipes(aiida_profile_clean, cu_al_structures):
    """One clean profile for the three recipes: nodes of other tests would otherwise be found too."""
    nodes = make_study_nodes(cu_al_structures)
    models = nodes['models']

    namespace = {}
    exec(recipes()['accurate-models'], namespace)  # noqa: S102 - the documented recipe, as written
    assert namespace['accurate'] == {models['R']: 90.0, models['A']: 100.0, models['B']: 120.0}

    namespace = {'reference_uuid': nodes['reference']}
    exec(recipes()['ea-differs'], namespace)  # noqa: S102
    # A (ΔEa 0.01 eV) agrees and its failed run (0.9 eV) is not counted; C is excluded by its RMSE; B is 0.09 eV off
    [(uuid, rmse, ea, delta)] = namespace['suspicious']
    assert uuid == models['B'] and rmse == 120.0 and ea == 0.40
    assert delta == pytest.approx(0.09)

    namespace = {'dataset_sha256': nodes['dataset_sha256']}
    exec(recipes()['models-of-dataset'], namespace)  # noqa: S102
    assert sorted(namespace['models']) == sorted([models['R'], models['A'], models['B']])
