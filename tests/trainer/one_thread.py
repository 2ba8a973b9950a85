"""A fixture for tests that generate with a model in this process: torch on one thread.

Steps of small tensor operations run many times slower on more threads of a busy machine; the
model server measures this at start and picks its thread count, while a pool built in a test
process would keep torch's default.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the module, as it was before afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
