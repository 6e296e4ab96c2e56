"""Peewee models. Their tables are created by migrations.py, never by create_table()."""

from __future__ import annotations

import peewee as pw

from .db import proxy


class BaseModel(pw.Model):
    class Meta:
        database = proxy
        legacy_table_names = False


class SubjectRow(BaseModel):
    pk = pw.BigAutoField()
    org = pw.TextField()
    type = pw.TextField()
    external_id = pw.TextField()
    parent_id = pw.TextField(default="")
    display_name = pw.TextField(default="")
    create_time = pw.BigIntegerField()
    update_time = pw.BigIntegerField()
    archive_time = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "subjects"


class NoteRow(BaseModel):
    number = pw.BigAutoField()
    id = pw.TextField(unique=True)
    org = pw.TextField()
    subject_type = pw.TextField()
    subject_id = pw.TextField()
    subject_parent_id = pw.TextField(default="")
    note_type = pw.TextField()
    title = pw.TextField()
    body = pw.TextField()
    visibility = pw.TextField()
    tags = pw.TextField()  # JSON array, as written; note_tags indexes it
    links = pw.TextField()  # JSON array of [type, id]; note_links indexes it
    metadata = pw.TextField()  # JSON object
    source = pw.TextField()
    source_type = pw.TextField()
    author_type = pw.TextField()
    author_id = pw.TextField()
    author_name = pw.TextField()
    created_via = pw.TextField()
    api_key_id = pw.TextField()
    purpose = pw.TextField()
    happened_at = pw.BigIntegerField(null=True)
    create_time = pw.BigIntegerField()
    update_time = pw.BigIntegerField()
    delete_time = pw.BigIntegerField(null=True)
    version = pw.BigIntegerField()
    # The number the organization knows the note by (1, 2, 3... per organization); `number`
    # is the row's key across organizations, for links, tags and paging, never shown.
    org_number = pw.BigIntegerField()

    class Meta:
        table_name = "notes"


class NoteLinkRow(BaseModel):
    note_number = pw.BigIntegerField()
    org = pw.TextField()
    type = pw.TextField()
    record_id = pw.TextField()

    class Meta:
        table_name = "note_links"
        primary_key = pw.CompositeKey("note_number", "type", "record_id")


class NoteTagRow(BaseModel):
    note_number = pw.BigIntegerField()
    org = pw.TextField()
    tag = pw.TextField()

    class Meta:
        table_name = "note_tags"
        primary_key = pw.CompositeKey("note_number", "tag")


class RequestRow(BaseModel):
    """The first response to a mutating request, kept for replay."""

    org = pw.TextField()
    method = pw.TextField()
    request_id = pw.TextField()
    fingerprint = pw.TextField()
    response = pw.TextField()
    create_time = pw.BigIntegerField()

    class Meta:
        table_name = "request_ids"
        primary_key = pw.CompositeKey("org", "method", "request_id")


class ApiKeyRow(BaseModel):
    key_id = pw.TextField(primary_key=True)
    secret_hash = pw.TextField(unique=True)
    org = pw.TextField()
    actor_id = pw.TextField()
    display_name = pw.TextField()
    purpose = pw.TextField()
    scopes = pw.TextField()  # space separated
    create_time = pw.BigIntegerField()
    expire_time = pw.BigIntegerField(null=True)
    revoke_time = pw.BigIntegerField(null=True)
    # The secret encrypted with the server key (Fernet), for OAuth 1.0a signatures; NULL for
    # keys made before migration 6, which work over Basic and query strings only.
    secret_sealed = pw.TextField(null=True)

    class Meta:
        table_name = "api_keys"


class NoteEventRow(BaseModel):
    """The audit trail; rows are never deleted with their note."""

    pk = pw.BigAutoField()
    org = pw.TextField()
    note_id = pw.TextField()
    action = pw.TextField()
    actor_type = pw.TextField()
    actor_id = pw.TextField()
    actor_name = pw.TextField()
    surface = pw.TextField()
    api_key_id = pw.TextField()
    purpose = pw.TextField()
    request_id = pw.TextField()
    old_version = pw.BigIntegerField()
    new_version = pw.BigIntegerField()
    event_time = pw.BigIntegerField()

    class Meta:
        table_name = "note_events"
