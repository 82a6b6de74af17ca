"""The training-config reader: the shipped configs read as before, and a broken one names its file and line."""

import pytest
import yaml

from flarelib.paths import CONFIG_DIR, ConfigError, read_config


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_configs_read_as_yaml_safe_load_reads_them(path):
    assert read_config(path) == yaml.safe_load(path.read_text())


def test_a_syntax_error_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  pool: max\ndata:\n  target: [now\n  cache: none\n")
    with pytest.raises(ConfigError,
                       match=r"broken\.yaml:5:8: expected ',' or '\]', but got ':' \(while parsing a flow sequence at "
                             r"line 4, column 11\)$") as err:
        read_config(path)
    assert "\n" not in str(err.value)


def test_a_repeated_key_is_refused_where_it_repeats(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("data:\n  target: now\n  cache: none\n  target: lead60min_window1440min\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml:4:3: key 'target' is given twice in one mapping, at lines 2 "
                                          r"and 4 .*: delete one of them"):
        read_config(path)
    path.write_text("model:\n  pool: max\ndata:\n  pool: max\n")  # the same key in two sections is fine
    assert read_config(path) == {"model": {"pool": "max"}, "data": {"pool": "max"}}


def test_an_empty_config_is_empty_and_a_list_is_refused(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert read_config(path) == {}
    path.write_text("- model\n- data\n")
    with pytest.raises(ConfigError, match="top level is a list"):
        read_config(path)
