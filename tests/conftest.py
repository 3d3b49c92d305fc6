"""Shared fixtures. Compiled kernels are cached on disk by plateletpd itself, and the model
fixtures are session-scoped, so each model compiles at most once per machine."""

from pathlib import Path

import pytest

import plateletpd as pp

TEST_MODELS = Path(__file__).parent / "models"


@pytest.fixture(scope="session")
def one_compartment():
    return pp.load_model(TEST_MODELS / "one_compartment.toml")


@pytest.fixture(scope="session")
def transit_chain():
    return pp.load_model(TEST_MODELS / "transit_chain.toml")


@pytest.fixture(scope="session")
def friberg():
    return pp.load_model("friberg_platelets")
