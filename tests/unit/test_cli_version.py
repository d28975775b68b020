from click.testing import CliRunner

from cli.main import main


def test_version_names_the_installed_release():
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == "kommo-agent, version 0.2.0"
