"""Alembic environment: migrates the database named by the caller (``init-db``) or AUTHZ_DATABASE_URL."""

from alembic import context
from sqlalchemy import create_engine

from authz_service.config import load_settings
from authz_service.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_settings().database_url
connection = config.attributes.get("connection")


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    _run(connection)
else:
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
