import pytest
import torch

from sr_lib.config import get_config


@pytest.fixture
def tiny():
    return get_config("tiny")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
