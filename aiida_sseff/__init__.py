"""aiida-sseff: provenance-tracked training and validation of machine-learning force fields for solid-state electrolytes."""

__version__ = '0.1.0'
