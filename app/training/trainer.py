"""The training loop of one run: seeded, cancellable between steps, reporting as it goes.

Everything random comes from one generator seeded with the run's seed, in a fixed order (initial
weights, training subset, then each epoch's batch order), and CPU kernels are deterministic for a
given thread count, so the same plan gives the same numbers, step for step, in any thread.
"""

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from convscope.optimizers import OPTIMIZERS
from convscope.training.datasets import Data
from convscope.training.nets import build_net, first_conv, loss_function
from convscope.training.plan import Plan

EVAL_CHUNK = 500  # test images per forward; cancellation is checked between chunks


@dataclass(frozen=True)
class StepReport:
    step: int
    epoch: int
    loss: float  # mean over the batches since the previous report
    accuracy: float
    kernels: Tensor | None  # the first conv layer's weight [out, in, kh, kw], on some reports


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    step: int
    train_loss: float  # means over the epoch's batches
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    kernels: Tensor


class Diverged(Exception):
    """The loss stopped being a finite number."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss {loss} at step {step}")
        self.step = step
        self.loss = loss


class _Mean:
    """Running means of loss and accuracy, weighted by batch size."""

    def __init__(self) -> None:
        self.loss = self.correct = 0.0
        self.count = 0

    def add(self, loss: float, correct: int, count: int) -> None:
        self.loss += loss * count
        self.correct += correct
        self.count += count

    def means(self) -> tuple[float, float]:
        return self.loss / max(self.count, 1), self.correct / max(self.count, 1)


class Trainer:
    """Trains one network on one dataset as a Plan says; `run()` yields reports as it goes."""

    def __init__(self, plan: Plan, data: Data, cancelled: Callable[[], bool], deadline: float = math.inf,
                 pause: Callable[[], None] = lambda: time.sleep(0)) -> None:
        s = plan.settings
        self.plan, self.data, self.cancelled, self.deadline, self.pause = plan, data, cancelled, deadline, pause
        self.generator = torch.Generator().manual_seed(s.seed)
        self.net = build_net(s.architecture, s.activation, s.pooling, self.generator)
        self.kernel_layer, self._conv = first_conv(self.net)
        assert s.learning_rate is not None  # resolved by the plan
        self.optimizer = OPTIMIZERS[s.optimizer].build(self.net.parameters(), s.learning_rate)
        self.loss_fn = loss_function(s.loss)
        chosen = torch.randperm(len(data.train_labels), generator=self.generator)[:plan.train_size]
        if plan.train_size == len(data.train_labels):
            chosen = chosen.sort().values  # all of them: keep the dataset's order (shuffled per epoch anyway)
        self.images, self.labels = data.train_images[chosen], data.train_labels[chosen]
        self.step = 0
        self.stopped: Literal["cancelled", "time"] | None = None
        self.final: tuple[float, float] | None = None  # test (loss, accuracy) of the final weights

    def _should_stop(self) -> bool:
        if self.cancelled():
            self.stopped = "cancelled"
        elif time.monotonic() > self.deadline:
            self.stopped = "time"
        return self.stopped is not None

    def run(self) -> Iterator[StepReport | EpochReport]:
        """Train until the plan's last step (or a stop); a report at each logged step and epoch end."""
        plan, net = self.plan, self.net
        events = 0
        for epoch in range(1, plan.epochs + 1):
            net.train()
            window, whole = _Mean(), _Mean()
            order = torch.randperm(len(self.labels), generator=self.generator)
            for batch in torch.split(order, plan.settings.batch_size):
                if self._should_stop():
                    return
                loss, correct = self._step(batch)
                window.add(loss, correct, len(batch))
                whole.add(loss, correct, len(batch))
                if self.step % plan.log_every == 0 or self.step == plan.total_steps:
                    with_kernels = events % plan.kernel_every == 0 or self.step == plan.total_steps
                    events += 1
                    yield StepReport(self.step, epoch, *window.means(), self.kernels() if with_kernels else None)
                    window = _Mean()
                self.pause()  # between steps: where requests get the GIL and the core
                if self.step == plan.total_steps:
                    break
            if whole.count < len(self.labels):  # a partial last epoch (`steps`): no epoch report
                return
            tested = self.evaluate()
            if tested is None:
                return
            self.final = tested if self.step == plan.total_steps else None
            yield EpochReport(epoch, self.step, *whole.means(), *tested, self.kernels())

    def _step(self, batch: Tensor) -> tuple[float, int]:
        """One optimizer step on the images at `batch`; the batch's loss and number right."""
        x, y = self.data.inputs(self.images[batch]), self.labels[batch]  # [B, 1, 28, 28], [B]
        logits = self.net(x)
        loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        self.optimizer.step()
        self.step += 1
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(self.step, value)
        return value, int((logits.argmax(1) == y).sum())

    def evaluate(self) -> tuple[float, float] | None:
        """(loss, accuracy) on the whole test set, or None if cancelled meanwhile."""
        net, data = self.net, self.data
        net.eval()
        total = _Mean()
        with torch.no_grad():
            for start in range(0, len(data.test_labels), EVAL_CHUNK):
                if self.cancelled():
                    self.stopped = "cancelled"
                    return None
                x = data.inputs(data.test_images[start:start + EVAL_CHUNK])
                y = data.test_labels[start:start + EVAL_CHUNK]
                logits = net(x)
                total.add(float(self.loss_fn(logits, y)), int((logits.argmax(1) == y).sum()), len(y))
        net.train()
        return total.means()

    def final_test(self) -> tuple[float, float] | None:
        """The final weights' test (loss, accuracy): from the last epoch end if that was the last step."""
        if self.final is None:
            self.final = self.evaluate()
        return self.final

    def kernels(self) -> Tensor:
        return self._conv.weight.detach().clone()
