"""``aiida-sseff launch locality``: builds the work chain from the protocol; refusals name the problem."""

from click.testing import CliRunner

from aiida_sseff.cli import cmd_root


def test_launch_locality_species_absent_and_conflicting_surrogates(aiida_profile, engine_code):
    result = CliRunner().invoke(cmd_root, ['launch', 'locality', 'Li10GeP2S12', '--species', 'Li,Na', '--no-daemon'])
    assert result.exit_code == 0, result.output
    assert "[401] species ['Na'] not in the structure" in result.output
    result = CliRunner().invoke(cmd_root, ['launch', 'locality', 'Li10GeP2S12', '--surrogate-model', '1',
                                           '--chgnet-surrogate', '--no-daemon'])
    assert result.exit_code != 0 and 'either --surrogate-model or --chgnet-surrogate' in result.output
    result = CliRunner().invoke(cmd_root, ['launch', 'locality', 'Li10GeP2S12', '--no-daemon',
                                           '--protocol', 'fast', '--overrides', '/nonexistent.yaml'])
    assert result.exit_code != 0
