"""The store: Peewee models, queries and migrations. Only this package speaks SQL."""
