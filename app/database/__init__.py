"""Run records in a database: the training lab's runs, their events and their trained models.

SQLAlchemy 2 underneath, its schema made and upgraded by Alembic migrations (migrations/), so one
code path serves the default SQLite file in the data folder and PostgreSQL when
CONVSCOPE_DATABASE_URL names one. `tables.py` is the schema; `connect.py` opens a database and
brings it to the current schema.
"""
