"""Which process trains a run, and when it last said it is alive (a run whose worker died is failed).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.add_column(sa.Column("worker", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("heartbeat", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.drop_column("heartbeat")
        batch_op.drop_column("worker")
