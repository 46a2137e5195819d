"""The colabs execute without error and match their jupytext percent scripts."""

import os

import jupytext
import nbclient
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = ["advantage_estimators", "reasoning_boundary", "svs"]


def _cells(nb):
  return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_and_py_are_in_sync(name):
  ipynb = jupytext.read(os.path.join(ROOT, "colabs", f"{name}.ipynb"))
  script = jupytext.read(os.path.join(ROOT, "colabs", f"{name}.py"))
  assert _cells(ipynb) == _cells(script), (
      f"colabs/{name}.ipynb and .py differ: run jupytext --sync colabs/{name}.py")
  assert len(ipynb.cells) > 5


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, monkeypatch):
  # The SvS notebook's warm start, shortened: the parts run, the policy is weak.
  monkeypatch.setenv("SVS_COLAB_WARMSTART_STEPS", "30")
  nb = nbformat.read(os.path.join(ROOT, "colabs", f"{name}.ipynb"), as_version=4)
  # cwd = repository root, so the kernel imports this checkout's rlvr_jax.
  client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                   resources={"metadata": {"path": ROOT}})
  client.execute()  # raises CellExecutionError on any failing cell
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
  # Every plotting cell produced a figure.
  plotting = [c for c in code if "plt.show()" in c.source]
  assert plotting
  for c in plotting:
    assert any("image/png" in o.get("data", {}) for o in c.outputs), c.source[:200]
