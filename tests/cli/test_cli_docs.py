"""docs/user/cli.md documents every command, argument and option of ``aiida-sseff`` and ``verdi data sseff``; the CLI
modules import without a cycle.

The command tree is walked through click, so a command or an option added without its documentation fails here.
Convention of cli.md: every command that has arguments or options (other than --help) has a heading holding its full
path in backticks (e.g. ``### `aiida-sseff sample fps` ``); its section (up to the next heading) names each argument
in capitals and each option by its long name.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import aiida_sseff.cli
from aiida_sseff.cli import cmd_root
from aiida_sseff.cli.data import data_sseff

CLI_MD = Path(__file__).resolve().parents[2] / 'docs' / 'user' / 'cli.md'
CLI_PACKAGE = Path(aiida_sseff.cli.__file__).parent
CLI_MODULES = sorted(path.stem for path in CLI_PACKAGE.glob('*.py') if path.stem != '__init__')


def commands(command: click.Command, path: tuple[str, ...]):
    """(full path, command) of ``command`` and of every command below it."""
    yield ' '.join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from commands(sub, (*path, name))


ALL_COMMANDS = [*commands(cmd_root, ('aiida-sseff',)), *commands(data_sseff, ('verdi', 'data', 'sseff'))]


def sections() -> dict[str, str]:
    """Heading text -> the text up to the next heading, of cli.md."""
    result: dict[str, str] = {}
    current = None
    for line in CLI_MD.read_text(encoding='utf-8').splitlines():
        if line.startswith('#'):
            current = line.lstrip('#').strip()
            result[current] = ''
        elif current is not None:
            result[current] += line + '\n'
    return result


def documented_section(path: str, all_sections: dict[str, str]) -> str | None:
    for heading, text in all_sections.items():
        if re.search(rf'`{re.escape(path)}(\s[^`]*)?`', heading):
            return heading + '\n' + text
    return None


# aiida's VerdiCommandGroup adds --verbosity to every sub-command when it is first looked up; cli.md documents it
# once, for the root command
_EVERY_COMMAND = ('--verbosity',)


def parameters(command: click.Command, root: bool = False) -> tuple[list[str], list[str]]:
    """Argument names (capitals) and long option names of ``command``, without --help."""
    arguments = [p.name.upper() for p in command.params if isinstance(p, click.Argument)]
    options = []
    for param in command.params:
        if isinstance(param, click.Option) and (root or not set(param.opts) & set(_EVERY_COMMAND)):
            names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith('--')]
            options.extend(names or param.opts)
    return arguments, options


@pytest.mark.parametrize('path, command', ALL_COMMANDS, ids=[path for path, _ in ALL_COMMANDS])
def test_every_command_and_option_is_in_cli_md(path, command):
    arguments, options = parameters(command, root=path in ('aiida-sseff', 'verdi data sseff'))
    all_sections = sections()
    if not arguments and not options:
        assert f'`{path}' in CLI_MD.read_text(encoding='utf-8'), f'`{path}` is not mentioned in {CLI_MD.name}'
        return
    section = documented_section(path, all_sections)
    assert section is not None, f'{CLI_MD.name} has no heading with `{path}`'
    missing = [name for name in arguments if not re.search(rf'\b{name}\b', section)]
    missing += [name for name in options if not re.search(rf'(?<![\w-]){re.escape(name)}(?![\w-])', section)]
    assert not missing, f'the section of `{path}` in {CLI_MD.name} does not document {", ".join(missing)}'


def test_cli_md_documents_no_command_that_does_not_exist():
    """A heading names an existing command, optionally followed by its arguments (capitals) or options."""
    existing = {path for path, _ in ALL_COMMANDS}
    for heading in sections():
        match = re.match(r'`((?:aiida-sseff|verdi data sseff)[^`]*)`', heading)
        if not match:
            continue
        words = match.group(1).split()
        length = max((k for k in range(1, len(words) + 1) if ' '.join(words[:k]) in existing), default=0)
        rest = words[length:]
        assert length and all(w.isupper() or w.startswith(('-', '[')) for w in rest), \
            f'{CLI_MD.name} has a heading for `{match.group(1)}`, which is not a command'


def _module_level_cli_imports(module: str) -> set[str]:
    tree = ast.parse((CLI_PACKAGE / f'{module}.py').read_text(encoding='utf-8'))
    imported = set()
    for node in tree.body:  # module level only: imports inside functions run when the command runs
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('aiida_sseff'):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.startswith('aiida_sseff'))
    return imported


def test_no_cli_module_imports_another_command_module():
    """root.py imports nothing of aiida-sseff; the cmd_* modules take their groups from root only."""
    assert _module_level_cli_imports('root') == set()
    for module in CLI_MODULES:
        if module == 'root':
            continue
        others = {name for name in _module_level_cli_imports(module)
                  if name.startswith('aiida_sseff.cli') and name != 'aiida_sseff.cli.root'}
        assert not others, f'aiida_sseff/cli/{module}.py imports {others} at module level'


def test_each_cli_module_imports_alone():
    """Each module, imported first in a fresh interpreter, works (no partially initialised module)."""
    code = ('import importlib, subprocess, sys\n'
            f'for name in {CLI_MODULES!r}:\n'
            '    subprocess.run([sys.executable, "-c", f"import aiida_sseff.cli.{name}"], check=True)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
