"""Report section of ``sseff.study.reference_quality``: the label differences between the two references (b − a),
the errors of the model trained on each, and ΔEa of their transport when it was run."""

from __future__ import annotations

from aiida_sseff.report import Table, Text, register_section
from aiida_sseff.report.tables import dict_table

REFERENCES = ('reference_a', 'reference_b')
METRIC_KEYS = [('energy_mev_per_atom', 'energy (meV/atom)'), ('force_mev_per_angstrom', 'force (meV/Å)'),
               ('virial_mev_per_atom', 'virial (meV/atom)')]


def _protocol(node, name: str) -> str:
    label = node.base.links.get_outgoing(link_label_filter=f'label_{name}').all_nodes()
    if not label:
        return '–'
    inputs = label[0].inputs
    return inputs.protocol.value if 'protocol' in inputs else label[0].label or '–'


@register_section('sseff.study.reference_quality')
def reference_quality_section(node) -> list:
    blocks = [Text('Differences of the labels of the same structures, reference b − reference a.'),
              dict_table('Label differences (b − a)', node.outputs.comparison.get_dict())]
    rows = []
    for name in REFERENCES:
        if name in node.outputs and 'metrics' in node.outputs[name]:
            metrics = node.outputs[name].metrics.get_dict()
            rows.append([name, *[metrics.get(key) for key, _ in METRIC_KEYS]])
    if rows:
        blocks.append(Table('Model trained on each reference: held-out errors',
                            ['reference', *[header for _, header in METRIC_KEYS]], rows))
    if 'transport_comparison' in node.outputs:
        blocks.append(dict_table('Transport of the two models (b − a)', node.outputs.transport_comparison.get_dict(),
                                 caption='ΔEa is significant beyond twice its combined error.'))
    return blocks
