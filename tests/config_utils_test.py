import pytest

from rlvr_jax import config_utils


def test_parse_arg_types_and_flags():
  arg = config_utils.parse_arg("k=8,estimator=passk_analytical,runlocal,lr=2e-6",
                               k=4, estimator="grpo", runlocal=False, lr=1e-6)
  assert arg.k == 8 and isinstance(arg.k, int)
  assert arg.estimator == "passk_analytical"
  assert arg.runlocal is True
  assert arg.lr == 2e-6


def test_parse_arg_defaults_when_empty():
  arg = config_utils.parse_arg("", k=4, runlocal=False)
  assert arg.k == 4 and arg.runlocal is False


@pytest.mark.parametrize("bad, match", [
    ("kk=3", "unknown config arg 'kk'"),
    ("k", "needs a value"),
    ("k=eight", "cannot parse 'eight'"),
    ("runlocal=maybe", "expected a boolean"),
])
def test_parse_arg_errors(bad, match):
  with pytest.raises(ValueError, match=match):
    config_utils.parse_arg(bad, k=4, runlocal=False)
