"""Reports of finished studies and pipelines, rebuilt from the provenance graph alone (``aiida-sseff report``).

A report is a list of blocks (:mod:`.blocks`: text, tables, figures) per process. Each WorkChain that has something
to show registers a *section* for its entry point in a module of :mod:`aiida_sseff.report.sections`
(:func:`.registry.register_section`); a section reads only stored nodes (outputs, inputs, called processes), never a
file outside the profile, so that the report of an archive imported into a fresh profile is the same.
"""

from aiida_sseff.report.blocks import Figure, Table, Text
from aiida_sseff.report.registry import register_section, section_for

__all__ = ('Figure', 'Table', 'Text', 'register_section', 'section_for')
