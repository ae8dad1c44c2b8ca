import os

import numpy as np
import pytest
from hypothesis import settings

# Reproducible property tests in CI (as SciPy does).
settings.register_profile(
    "deterministic", derandomize=True, database=None, deadline=None, max_examples=60
)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("MTLM_HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(params=[0, 1, 2])
def global_random_seed(request):
    return request.param


@pytest.fixture
def rng(global_random_seed):
    return np.random.default_rng(global_random_seed)
