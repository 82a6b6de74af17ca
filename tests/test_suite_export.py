"""The suite's executed notebooks and their HTML: quiet steps, no widget text, no megabytes of widget state."""

import nbformat

from flarelib import suite


def test_a_suite_step_runs_quietly_and_exports_figures_without_the_kernel_or_nbconvert_noise(tmp_path, capfd):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                         "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("SIZE = 'small'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([0, 1]);")]
    path = tmp_path / "01_tiny.ipynb"
    nbformat.write(nb, path)
    executed, _ = suite.run_notebook(path, tmp_path / "out", "small", timeout=120)
    err = capfd.readouterr().err
    assert "running over TCP" not in err and "Alternative text is missing" not in err, err
    assert "image/png" in nbformat.read(executed, as_version=4).cells[-1].outputs[0]["data"]
    assert 'alt="' in executed.with_suffix(".html").read_text()  # nbconvert still describes the figure
