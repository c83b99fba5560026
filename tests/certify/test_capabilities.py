"""Certification reads the method's declared capabilities: only a smoothed method (``capabilities.smoothed``) is
certified, whatever attributes another method happens to carry."""

from __future__ import annotations

import pytest
import torch

from bench.certify.bounds import certify
from bench.methods.bicubic import Bicubic


def test_a_method_that_is_not_smoothed_is_refused_even_with_a_sigma_attribute() -> None:
    method = Bicubic()
    method.sigma = 0.05  # an attribute is not a capability
    assert not method.capabilities.smoothed
    with pytest.raises(ValueError, match=r"median-smoothing method .* got Bicubic"):
        certify(method, torch.full((1, 3, 8, 8), 0.5), epsilons=(0.01,))
