"""``verdi data sseff``: list, show, import and export datasets and models (``aiida.cmdline.data`` entry point)."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo


@click.group('sseff')
def data_sseff():
    """Datasets (sseff.dataset) and force-field models (sseff.model.nep, sseff.model.mace)."""


@data_sseff.group('dataset')
def data_dataset():
    """Labelled structure sets."""


@data_dataset.command('list')
@decorators.with_dbenv()
def dataset_list():
    """List all datasets: pk, structures, atoms, elements, labels, creator."""
    from aiida import orm

    from aiida_sseff.data.dataset import LabelledDataset

    query = orm.QueryBuilder().append(LabelledDataset, project=['id', 'attributes', 'ctime'])
    rows = query.all(flat=False)
    if not rows:
        echo.echo_report('no datasets')
        return
    click.echo(f'{"pk":>6} {"structures":>10} {"atoms":>8} {"labels":>6} {"virial":>6}  elements')
    for pk, attributes, _ in sorted(rows):
        click.echo(
            f'{pk:>6} {attributes.get("n_structures", 0):>10} {attributes.get("n_atoms", 0):>8} '
            f'{"yes" if attributes.get("has_labels") else "no":>6} {"yes" if attributes.get("has_virial") else "no":>6}'
            f'  {" ".join(attributes.get("elements", []))}'
        )


@data_dataset.command('show')
@arguments.DATUM()
def dataset_show(datum):
    """Attributes of a dataset."""
    for key in ('n_structures', 'n_atoms', 'elements', 'has_labels', 'has_virial', 'config_types', 'sha256'):
        click.echo(f'{key:>13}: {datum.base.attributes.get(key, None)}')
    if datum.creator is not None:
        click.echo(f'{"created by":>13}: {datum.creator.process_label} <{datum.creator.pk}>')


@data_dataset.command('export')
@arguments.DATUM()
@click.argument('filename', type=click.Path(dir_okay=False))
def dataset_export(datum, filename):
    """Write the dataset's extended-XYZ file."""
    path = datum.write(Path(filename))
    echo.echo_success(f'wrote {datum.n_structures} structures to {path}')


@data_dataset.command('import')
@click.argument('filename', type=click.Path(exists=True, dir_okay=False))
@click.option('--unlabelled', is_flag=True, help='Accept structures without energy/forces (candidates).')
@click.option('--label', default='', help='Node label.')
@decorators.with_dbenv()
def dataset_import(filename, unlabelled, label):
    """Store a file (extxyz, OUTCAR, vasprun.xml, ... anything ASE reads) as a dataset."""
    from aiida_sseff.data.dataset import DatasetValidationError, LabelledDataset

    try:
        node = LabelledDataset.from_file(filename, require_labels=not unlabelled)
    except DatasetValidationError as exception:
        echo.echo_critical(f'{filename}: {exception}')
    node.label = label
    node.store()
    echo.echo_success(f'stored {node.n_structures} structures as dataset <{node.pk}>')


@data_sseff.group('model')
def data_model():
    """Force-field models."""


@data_model.command('import')
@click.argument('filename', type=click.Path(exists=True, dir_okay=False))
@click.option('--kind', type=click.Choice(['nep', 'mace']), default='nep', show_default=True)
@click.option('--allow-pickle', is_flag=True,
              help='MACE: load a file that a weights-only torch.load refuses as a full pickle. That runs any code the '
                   'file holds: only for files you trust.')
@decorators.with_dbenv()
def model_import(filename, kind, allow_pickle):
    """Store a nep.txt (or a MACE model) as a model node.

    A MACE/torch file is read with torch.load(weights_only=True), rebuilding only the classes of MACE, e3nn and
    torch.nn: a file that needs anything else is refused unless --allow-pickle is given.
    """
    from aiida_sseff.data.model import MaceModel, ModelFileError, NepModel

    if allow_pickle and kind != 'mace':
        echo.echo_critical(f'--allow-pickle applies to MACE/torch files only, not to --kind {kind}')
    if allow_pickle:
        echo.echo_warning(f'loading `{filename}` as a full pickle: any code it holds runs now, with your rights')
    try:
        if kind == 'nep':
            node = NepModel(filename).store()
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter('ignore', UserWarning)  # the CLI has warned already
                node = MaceModel(filename, allow_pickle=allow_pickle).store()
    except ModelFileError as exception:
        echo.echo_critical(str(exception))
    echo.echo_success(f'stored {kind} model <{node.pk}> ({" ".join(node.elements)})')


@data_model.command('show')
@arguments.DATUM()
def model_show(datum):
    """Architecture attributes of a model."""
    for key, value in sorted(datum.base.attributes.all.items()):
        click.echo(f'{key:>16}: {value}')
