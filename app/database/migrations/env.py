"""Alembic's environment: migrations run on the connection connect.upgrade() hands over, or, for
`alembic revision --autogenerate` from the command line, on the URL given with -x url=..."""

from alembic import context
from sqlalchemy import create_engine

from convscope.database.tables import Base

config = context.config
connection = config.attributes.get("connection")


def run(conn: object) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    with create_engine(context.get_x_argument(as_dictionary=True)["url"]).connect() as conn:
        run(conn)
        conn.commit()
