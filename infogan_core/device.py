"""What a CUDA device adds to a training run: the step captured in a CUDA graph and replayed, and TF32 for
precision tf32 (and true float32 otherwise)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import torch

from infogan_core.config import TrainConfig
from infogan_core.step import Run, train_step


@contextlib.contextmanager
def matmul_precision(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """TF32 matmuls and convolutions on a CUDA device for precision tf32, and exact float32 (TF32 off, which is
    not cuDNN's default) for fp32 and bf16; a CPU computes float32 whatever it says. Restored afterwards."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class GraphedStep:
    """The step on a CUDA device, captured in a CUDA graph and replayed: one launch instead of hundreds.

    The first WARMUP steps run eagerly on a side stream (they train for real, and let autograd and cuDNN
    settle their buffers, as torch.cuda.graphs asks), the next is captured and then replayed, and every later
    step is a replay with `run.step_t` set. Stopped members are a mask the graph reads, so nothing is captured
    twice. A capture that fails leaves the run eager, with a warning saying why."""

    WARMUP = 3

    def __init__(self, run: Run) -> None:
        self.run = run
        self.eager_left = self.WARMUP
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.failed:
            train_step(self.run)
        elif self.eager_left > 0:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                train_step(self.run)
            torch.cuda.current_stream().wait_stream(side)
            self.eager_left -= 1
        else:
            self._capture()

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                train_step(self.run)
        except Exception as exc:  # an operation that cannot be captured: train on without the graph
            self.failed = True
            warnings.warn(
                f"the training step could not be captured in a CUDA graph ({exc}); it runs eagerly", stacklevel=2
            )
            train_step(self.run)
            return
        self.graph = graph
        graph.replay()  # capturing ran nothing: this is the step itself


def stepper(run: Run) -> Callable[[], None]:
    """The step as the loop calls it: a CUDA graph's replay on a CUDA device (unless cuda_graph is off),
    else the eager step."""
    if run.device.type == "cuda" and run.cfg.cuda_graph:
        return GraphedStep(run)
    return lambda: train_step(run)


__all__ = ["GraphedStep", "matmul_precision", "stepper"]
