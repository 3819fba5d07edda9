"""docs/user/hpc.md does not rot: every YAML block, command line and builder path on the page is checked here.

- YAML blocks are the ``--config`` files of ``verdi profile setup core.psql_dos``, ``verdi computer setup``, ``verdi computer configure core.ssh`` and
  ``verdi code create core.code.installed``: aiida-core accepts exactly the names of the command's click parameters
  as keys (``aiida.cmdline.params.options.config.configuration_callback``), so each key must be one, and each value
  must convert with that parameter's own click type (a ``key_policy`` that is not a choice, a plugin that is not an
  entry point fail here).
- Command lines starting with ``verdi``, ``aiida-sseff`` or ``aiida-vasp`` must name existing (sub)commands and
  only their options, walked in the click command trees.
- The Python block's ``get_builder_from_protocol`` keywords must be parameters of that method, and every
  ``builder.<path>.metadata.options`` must be a namespace of the WorkChain's inputs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

HPC_MD = Path(__file__).resolve().parents[1] / 'docs' / 'user' / 'hpc.md'
FENCE = re.compile(r'^(?P<indent> *)```(?P<lang>\w+)\n(?P<body>.*?)^(?P=indent)```', re.MULTILINE | re.DOTALL)
CONFIG_KINDS = {
    'profile setup core.psql_dos': ('verdi', 'profile', 'setup', 'core.psql_dos'),
    'computer setup': ('verdi', 'computer', 'setup'),
    'computer configure core.ssh': ('verdi', 'computer', 'configure', 'core.ssh'),
    'code create core.code.installed': ('verdi', 'code', 'create', 'core.code.installed'),
}
#: parameters whose value is resolved in the database (a stored computer): checked against the page instead
DATABASE_PARAMETERS = {'computer'}


def blocks(language: str) -> list[str]:
    text = HPC_MD.read_text(encoding='utf-8')
    found = []
    for match in FENCE.finditer(text):
        if match.group('lang') == language:
            indent = len(match.group('indent'))
            found.append('\n'.join(line[indent:] for line in match.group('body').splitlines()))
    return found


def roots() -> dict[str, click.Command]:
    from aiida.cmdline.commands.cmd_verdi import verdi
    from aiida_vasp.commands import cmd_aiida_vasp

    from aiida_sseff.cli import cmd_root

    return {'verdi': verdi, 'aiida-sseff': cmd_root, 'aiida-vasp': cmd_aiida_vasp}


def subcommand(group: click.Group, name: str, parents: tuple[str, ...]) -> click.Command:
    command = group.get_command(click.Context(group), name)
    assert command is not None, f'hpc.md: `{" ".join((*parents, name))}` is not a command'
    return command


def resolve(path: tuple[str, ...]) -> click.Command:
    command = roots()[path[0]]
    for index, name in enumerate(path[1:], start=1):
        command = subcommand(command, name, path[:index])
    return command


def option_names(command: click.Command) -> dict[str, click.Parameter]:
    return {name: param for param in command.params if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}


def config_kind(config: dict) -> str:
    if 'database_hostname' in config:
        return 'profile setup core.psql_dos'
    if 'transport' in config or 'scheduler' in config:
        return 'computer setup'
    if 'default_calc_job_plugin' in config or 'filepath_executable' in config:
        return 'code create core.code.installed'
    if 'key_policy' in config or 'username' in config:
        return 'computer configure core.ssh'
    raise AssertionError(f'hpc.md: a YAML block that is no --config file of verdi known here: {sorted(config)}')


def test_every_yaml_block_is_a_valid_verdi_config(aiida_profile):
    configs = [yaml.safe_load(text) for text in blocks('yaml')]
    assert configs, 'hpc.md has no YAML block'
    kinds = [config_kind(config) for config in configs]
    assert set(kinds) == set(CONFIG_KINDS), f'hpc.md should show every kind of config file, shows {set(kinds)}'
    computers = {config['label'] for config, kind in zip(configs, kinds, strict=True) if kind == 'computer setup'}
    plugins = set()
    for config, kind in zip(configs, kinds, strict=True):
        command = resolve(CONFIG_KINDS[kind])
        parameters = {param.name: param for param in command.params if param.name not in ('config', 'non_interactive')}
        unknown = sorted(set(config) - set(parameters))
        assert not unknown, f'hpc.md: `verdi {kind} --config` does not accept the key(s) {unknown}'
        context = click.Context(command)
        # in the command's own order, each converted value in the context: some types read earlier ones (the
        # mpirun command is checked against the scheduler)
        for key in [name for name in parameters if name in config]:
            value = config[key]
            if key in DATABASE_PARAMETERS:
                assert value in computers, f'hpc.md: a code on computer `{value}`, which the page does not set up'
                continue
            parameter = parameters[key]
            if isinstance(parameter.type, click.Path):  # a file of the reader's machine (the SSH key): a path only
                assert isinstance(value, str) and value.startswith('/'), f'hpc.md: {key}: {value!r} is no path'
                continue
            try:
                context.params[key] = parameter.type.convert(value, parameter, context)
            except click.BadParameter as exception:
                pytest.fail(f'hpc.md: `verdi {kind}`: {key}: {value!r} is refused: {exception.message}')
        plugins.add(config.get('default_calc_job_plugin'))
    expected = {'sseff.gpumd', 'sseff.nep.train', 'sseff.mace.train', 'sseff.engine.md', 'vasp.vasp'}
    assert expected <= plugins, f'hpc.md lacks a code for {sorted(expected - plugins)}'


def command_lines() -> list[list[str]]:
    """Tokens of every command line in the bash blocks that runs verdi, aiida-sseff or aiida-vasp."""
    lines = []
    for text in blocks('bash'):
        for line in text.replace('\\\n', ' ').splitlines():
            line = line.split(' #', 1)[0].strip()
            if line.split(' ', 1)[0] in ('verdi', 'aiida-sseff', 'aiida-vasp'):
                lines.append(shlex.split(line))
    return lines


def check_command_line(tokens: list[str]) -> None:
    command, path, index = roots()[tokens[0]], [tokens[0]], 1
    while isinstance(command, click.Group) and index < len(tokens):
        token = tokens[index]
        if token.startswith('-'):  # an option of the group (-p PROFILE)
            option = option_names(command).get(token.split('=', 1)[0])
            assert option is not None, f'hpc.md: `{" ".join(path)}` has no option {token}'
            index += 1 if (option.is_flag or option.count or '=' in token) else 2
            continue
        command = subcommand(command, token, tuple(path))
        path.append(token)
        index += 1
    assert not isinstance(command, click.Group), f'hpc.md: `{" ".join(path)}` is a group, not a command'
    known = option_names(command)
    for token in tokens[index:]:
        if token.startswith('-') and token != '-':
            assert token.split('=', 1)[0] in known, f'hpc.md: `{" ".join(path)}` has no option {token}'


def test_every_command_line_exists():
    lines = command_lines()
    assert len(lines) >= 8, f'hpc.md: only {len(lines)} command lines found: the parser of this test is broken'
    for tokens in lines:
        check_command_line(tokens)


def _namespace_exists(namespace, path: list[str]) -> bool:
    from plumpy.ports import PortNamespace

    for name in path:
        if not isinstance(namespace, PortNamespace) or name not in namespace:
            return False
        namespace = namespace[name]
    return isinstance(namespace, PortNamespace)


def test_python_block_uses_existing_parameters_and_namespaces():
    (source,) = [text for text in blocks('python') if 'get_builder_from_protocol' in text]
    tree = ast.parse(source)
    imported = {alias.asname or alias.name: importlib.import_module(node.module)
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module.startswith('aiida_sseff')
                for alias in node.names}
    classes = {name: getattr(module, name) for name, module in imported.items()}
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr == 'get_builder_from_protocol']
    assert calls, 'hpc.md: the Python block builds nothing'
    for call in calls:
        process_class = classes[call.func.value.id]
        accepted = inspect.signature(process_class.get_builder_from_protocol).parameters
        unknown = [keyword.arg for keyword in call.keywords if keyword.arg not in accepted]
        assert not unknown, f'hpc.md: {process_class.__name__}.get_builder_from_protocol has no {unknown}'
    (process_class,) = {classes[call.func.value.id] for call in calls}
    paths = re.findall(r'^builder\.([\w.]+)\.metadata\.options\s*=', source, re.MULTILINE)
    assert len(paths) >= 4, 'hpc.md: the per-stage options of the main job are missing'
    for path in paths:
        assert _namespace_exists(process_class.spec().inputs, [*path.split('.'), 'metadata', 'options']), \
            f'hpc.md: {process_class.__name__} has no input namespace {path}.metadata.options'


def test_no_code_block_inside_a_list():
    """MkDocs' Markdown (fenced_code) renders a fence indented in a list item as inline text: keep them at column 0."""
    indented = [line for line in HPC_MD.read_text(encoding='utf-8').splitlines() if re.match(r'^\s+```', line)]
    assert not indented, f'hpc.md has indented code fences: {indented}'
