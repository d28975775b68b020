from importlib.metadata import version

from click.testing import CliRunner

from cli.main import main


def test_version_names_the_installed_release():
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"kommo-agent, version {version('kommo-agent')}"
    assert version("kommo-agent") != "0.1.0"  # the release that renamed the campaign tasks
