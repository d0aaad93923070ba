"""Fixtures of the oracle tests: one golden directory exported once per session, holding the
cases the NumPy implementations (``scripts/verify_numpy_reference.py`` and
``numpy_layers.py``) cover, in float64 and float32 (the LSTM's, slower to export, has its own
fixture in ``test_verify_mutations.py``)."""
import importlib.util
from pathlib import Path

import pytest

import oracle
from oracle.golden import export

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = ("activation.*", "loss.*", "layer.dense.*", "model.mlp.*", "model.linear_regression.*",
            "example.*", "training.*", "layer.conv2d.*", "layer.elman_rnn.*",
            "layer.avg_pool.*", "layer.embedding.*", "linalg.*", "fft.*", "top_k.*")


def load_script():
    """scripts/verify_numpy_reference.py as a module (tests plant bugs into its functions)."""
    path = ROOT / "scripts" / "verify_numpy_reference.py"
    spec = importlib.util.spec_from_file_location("verify_numpy_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def golden(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden")
    cases = [c for p in PATTERNS for c in oracle.cases.all(p)]
    done = export(directory, cases)
    assert not done.refused, done.refused
    return directory


@pytest.fixture
def ref():
    return load_script()
