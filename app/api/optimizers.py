"""The optimizers (convscope.optimizers) as the page's one-step view and any client list them."""

from fastapi import APIRouter

from convscope.optimizers import OPTIMIZERS
from convscope.schemas import OptimizerEntry, Optimizers

router = APIRouter(tags=["optimizers"])


@router.get("/optimizers")
def optimizers() -> Optimizers:
    """Every optimizer the one-step view (POST /api/models/{model}/step) and the training lab can use:
    its name, what it does, its torch.optim settings besides the learning rate, and its two default
    rates: for one step on one image, and for training."""
    return Optimizers(optimizers=[
        OptimizerEntry(id=o.id, name=o.name, description=o.description, step_learning_rate=o.step_lr,
                       training_learning_rate=o.training_lr, settings=o.settings) for o in OPTIMIZERS.values()])
