import torch

from crossdistill.engine.machine import cpu_model, matmul_gflops


def test_matmul_reference_is_measured_and_leaves_torch_threads_alone():
    before = torch.get_num_threads()
    g = matmul_gflops(threads=1, size=128, repeats=3)
    assert 0.01 < g < 1e5  # a plausible throughput, not a constant
    assert torch.get_num_threads() == before


def test_cpu_model_names_something():
    assert isinstance(cpu_model(), str) and cpu_model()
