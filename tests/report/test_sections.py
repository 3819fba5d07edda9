"""The ``sseff.study.architectures`` section on hand-made nodes linked as the study links them (its end-to-end test
takes minutes; the pipeline, training, diffusion, locality and reference-quality sections are checked in the
end-to-end tests of those WorkChains): the table rows are the stored rows, one Arrhenius panel per model."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from plumpy import ProcessState

from aiida_sseff.analysis.architectures import architecture_table
from aiida_sseff.analysis.arrhenius import fit_arrhenius

K_B = 8.617333262e-5  # eV/K (CODATA 2018)


def _process(entry_point: str, outputs: dict, caller=None, call_label='CALL'):
    node = orm.WorkflowNode()
    node.set_process_type(f'aiida.workflows:{entry_point}')
    node.set_process_label('StudyStub')
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(0)
    if caller is not None:
        node.base.links.add_incoming(caller, LinkType.CALL_WORK, call_label)
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


def _diffusion_outputs(ea: float) -> tuple[dict, orm.ArrayData]:
    """D(T) = 1e-3 exp(-Ea/kT) at 4 temperatures with 5 % errors, fitted as sseff.diffusion stores its fit."""
    temperatures = np.array([900.0, 1000.0, 1100.0, 1200.0])
    d = 1e-3 * np.exp(-ea / (K_B * temperatures))
    fit = fit_arrhenius(temperatures, d, 0.05 * d)
    results = {'Ea_eV': fit.ea, 'Ea_err_eV': fit.ea_err, 'D0_cm2_s': fit.d0, 'D0_err_cm2_s': fit.d0_err,
               'arrhenius_params': list(fit.params), 'arrhenius_cov': fit.cov.tolist(), 'dof': fit.dof,
               'errors_scaled_by_chi2': fit.scaled}
    arrays = orm.ArrayData()
    for name, value in (('temperature_K', temperatures), ('D_cm2_s', d), ('D_err_cm2_s', 0.05 * d),
                        ('fitted', np.ones(4, dtype=int))):
        arrays.set_array(name, value)
    return results, arrays


def test_architectures_study_section(aiida_profile):
    from aiida_sseff.report.render import build_report, render_html, report_json

    transport, arrays = {}, {}
    for label, ea in (('NEP', 0.30), ('MACE', 0.35)):
        transport[label], arrays[label] = _diffusion_outputs(ea)
    metrics = {'NEP': {'force_mev_per_angstrom': 100.0, 'energy_mev_per_atom': 2.0},
               'MACE': {'force_mev_per_angstrom': 80.0, 'energy_mev_per_atom': 1.5}}
    cost = {'NEP': {'train_wall_time_s': 10.0, 'md_speed': []}, 'MACE': {'train_wall_time_s': 30.0, 'md_speed': []}}
    rows = architecture_table(metrics, transport, cost, 'NEP', 300.0, kinds={'NEP': 'nep', 'MACE': 'mace'})
    outputs = {'table': orm.Dict({'reference': 'NEP', 'temperature_K': 300.0, 'rows': rows, 'markdown': ''})}
    for label in transport:
        outputs[f'transport__{label}'] = orm.Dict(transport[label])
        outputs[f'training__cost__{label}'] = orm.Dict(cost[label])
    study = _process('sseff.study.architectures', outputs)
    for label in transport:
        _process('sseff.test.diffusion_stub', {'results': orm.Dict(transport[label]), 'diffusion': arrays[label]},
                 caller=study, call_label=f'diffusion_{label}')

    report = build_report(study)
    data = report_json(report)
    section = data['sections'][0]
    assert section['entry_point'] == 'sseff.study.architectures'
    table = next(b['table'] for b in section['blocks'] if 'table' in b)
    assert [row[0] for row in table['rows']] == ['NEP', 'MACE']
    columns = table['columns']
    mace = dict(zip(columns, table['rows'][1], strict=True))
    stored = study.outputs.table['rows'][1]  # the stored numbers (the storage keeps 15 digits, not the float)
    assert mace['rel. to ref.'] == stored['force_rmse_relative'] == 0.8 and mace['Ea (eV)'] == stored['Ea_eV']
    assert abs(mace['ΔEa vs ref. (eV)'] - 0.05) < 1e-9  # exact D(T): the fits recover 0.30 and 0.35 eV
    assert [b['figure'] for b in section['blocks'] if 'figure' in b] == ['Relative RMSE and Arrhenius plots']
    assert render_html(report).count('<figure>') == 1  # no speed was measured: no speed figure
