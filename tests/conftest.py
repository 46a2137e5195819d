"""Shared test setup: eight fake CPU devices, so sharding tests see a mesh.

XLA reads the flag once, when the backend starts, so it is set before anything
imports jax.
"""

import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# TFDS builds of the tests' data go to a fresh directory, not the user's ~/.cache (subprocesses
# started by the tests inherit it).
if "RLVR_JAX_DATA_DIR" not in os.environ:
  import tempfile  # noqa: E402
  os.environ["RLVR_JAX_DATA_DIR"] = tempfile.mkdtemp(prefix="rlvr_jax_test_data_")
# Tests compare against float64 references; jax stays in float32 unless a test enables x64 itself.

import hypothesis  # noqa: E402

# The default suite replays the same examples on every run, so CI passes or
# fails on the code, not on the draw. `pytest --hypothesis-profile=explore`
# draws fresh examples (and more of them) to hunt for new failures.
hypothesis.settings.register_profile("default", derandomize=True, print_blob=True)
hypothesis.settings.register_profile("explore", derandomize=False, max_examples=500,
                                     print_blob=True)
hypothesis.settings.load_profile("default")


import jax  # noqa: E402
import pytest  # noqa: E402
from jax._src import compilation_cache  # noqa: E402


@pytest.fixture
def compile_cache(tmp_path):
  # The resumed run compiles the same programs again: a persistent cache halves the test.
  saved = {k: getattr(jax.config, k) for k in (
      "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
      "jax_persistent_cache_min_entry_size_bytes")}
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  compilation_cache.reset_cache()
  yield
  for k, v in saved.items():
    jax.config.update(k, v)
  compilation_cache.reset_cache()
