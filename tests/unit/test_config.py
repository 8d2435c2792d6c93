"""The option schema: TOML, command-line overrides, one-line errors, the README table."""

from pathlib import Path

import pytest

from xmppd import config as cfg

README = Path(__file__).resolve().parents[2] / "README.md"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "xmppd.toml"
    path.write_text(text)
    return path


def test_defaults_serve_localhost_with_tls_required():
    config = cfg.load()
    assert config.domains == ["localhost"]
    assert config.c2s_port == 5222
    assert config.tls_required is True
    assert config.registration is False
    assert config.max_stanza_size == 256 * 1024
    assert config.scram_iterations >= 4096


def test_file_then_command_line(tmp_path):
    path = write(tmp_path, 'domains = ["a.example", "B.Example"]\nc2s_port = 5333\nregistration = true\n')
    config = cfg.load(path, {"c2s_port": "6000", "domains": None})
    assert config.domains == ["a.example", "b.example"]  # nameprep lower-cases
    assert config.c2s_port == 6000
    assert config.registration is True


def test_command_line_domains_are_comma_separated():
    assert cfg.load(None, {"domains": "x.example, y.example"}).domains == ["x.example", "y.example"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 'blue'\n", "unknown option 'colour'"),
        ("c2s_port = 'abc'\n", "option 'c2s_port': expected an integer"),
        ("c2s_port = 70000\n", "option 'c2s_port': 70000 is out of bounds"),
        ("registration = 3\n", "option 'registration': expected true or false"),
        ("scram_iterations = 1000\n", "option 'scram_iterations': 1000 is out of bounds"),
        ("domains = []\n", "option 'domains': needs at least 1"),
        ("domains = ['user@example.org']\n", "is a JID, not a domain"),
        ("tls_cert = '/nonexistent.pem'\ntls_key = '/nonexistent.key'\n", "option 'tls_cert': cannot read"),
        ("tls_cert = '/etc/hostname'\n", "'tls_cert' and 'tls_key' must be given together"),
        ("c2s_port = \n", "not valid TOML"),
        ("log_level = 'verbose'\n", "option 'log_level': expected one of debug, info, warn, error, critical, got 'verbose'"),
        ("components = 'gw.localhost'\n", "option 'components': expected a table"),
        ("[components]\n'gw.localhost' = 7\n", "option 'components': expected a table"),
        ("[components]\n'gw@localhost' = 's'\n", "option 'components': 'gw@localhost' must be a domain of its own"),
        ("[components]\n'localhost' = 's'\n", "option 'components': 'localhost' must be a domain of its own"),
        ("[components]\n'conference.localhost' = 's'\n", "must be a domain of its own"),
        ("[components]\n'GW.localhost' = 's'\n'gw.localhost' = 't'\n", "must be a domain of its own, named once"),
        ("[components]\n'gw.localhost' = ''\n", "the secret of 'gw.localhost' must have 1 to 1023 characters"),
        ("component_listener = true\n", "option 'component_listener': no components to accept"),
        ("muc_history_flush_ms = -1\n", "option 'muc_history_flush_ms': -1 is out of bounds [0, 10000]"),
        ("muc_history_flush_ms = 60000\n", "option 'muc_history_flush_ms': 60000 is out of bounds [0, 10000]"),
        ("muc_history_flush_ms = 0.5\n", "option 'muc_history_flush_ms': expected an integer"),
    ],
)
def test_bad_files_fail_with_one_line_naming_the_option(tmp_path, text, message):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_components_are_a_table_of_prepared_domains_and_secrets_never_echoed(tmp_path):
    config = cfg.load(write(tmp_path, "component_listener = true\n[components]\n'GW.Localhost' = 'pa ss'\n"))
    assert (config.component_listener, config.component_interface, config.component_port) == (True, "127.0.0.1", 5347)
    assert config.components == {"gw.localhost": "pa ss"}
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load(write(tmp_path, "[components]\n'gw.localhost' = 'hunter2'\n'gw2.localhost' = 2\n"))
    assert "hunter2" not in str(caught.value)
    assert cfg.load().components == {} and cfg.load().component_listener is False


def test_missing_file(tmp_path):
    with pytest.raises(cfg.ConfigError, match="cannot read the configuration file"):
        cfg.load(tmp_path / "absent.toml")


def test_readme_option_table_is_generated_from_the_schema():
    text = README.read_text()
    start = text.index("-->", text.index(cfg.START)) + 3
    table = text[start : text.index(cfg.END)].strip()
    assert table == cfg.markdown_table()
