"""Insert many model rows at once, through PostgreSQL's COPY when the batch is large enough.

Why: `bulk_create` builds one INSERT with every value quoted into the SQL text on the client
(Django binds psycopg parameters client-side), and PostgreSQL then parses that statement. For
the submission path (a /send-bulk of 100 messages, a batch of the SMTP gateway's group commit)
and the delivery path's event rows, that quoting and parsing was the largest single cost of
storing. COPY streams the rows in PostgreSQL's copy format instead: no SQL to build or parse.

`insert_many(objs)` behaves like `Model.objects.bulk_create(objs)` for what our callers need:
field defaults and `pre_save` (auto_now_add) are applied, auto primary keys are filled in on the
objects (taken from the table's sequence first, as RETURNING would), and it runs in the
caller's transaction. From two rows on COPY costs less CPU (client and server) even with its
extra round trip (measured on the gateway's batches of ~5: −9 % CPU per message). A single row
(every /send stores a message, a recipient and an event) is one INSERT whose SQL text is built
once per model and then only bound: compiling it through `bulk_create` every time cost more
client CPU than PostgreSQL spent executing it, and a constant text stays a prepared statement
under server-side binding. Databases other than PostgreSQL (the development default is SQLite)
use `bulk_create`."""
from django.db import connections, router

COPY_MIN_ROWS = 2


def insert_many(objs, *, min_rows: int = COPY_MIN_ROWS):
    """INSERT `objs` (all of one model) and return them, primary keys set."""
    objs = list(objs)
    if not objs:
        return objs
    model = type(objs[0])
    using = router.db_for_write(model)
    connection = connections[using]
    if connection.vendor != "postgresql":
        return model._default_manager.db_manager(using).bulk_create(objs)
    for obj in objs:
        # As bulk_create does: a related object saved after it was assigned gives its key now.
        obj._prepare_related_fields_for_save(operation_name="insert_many")
    if len(objs) < min_rows:
        for obj in objs:
            _insert_one(obj, connection)
    else:
        _copy(model, objs, connection)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    return objs


_AUTO_KEYS = ("AutoField", "BigAutoField", "SmallAutoField")
_single_row_sql = {}  # (model, vendor) -> (sql, fields, auto primary key or None)


def _single_row_statement(model, connection):
    key = (model, connection.vendor)
    if key not in _single_row_sql:
        meta = model._meta
        pk = meta.pk
        auto_pk = pk if pk.get_internal_type() in _AUTO_KEYS else None
        # An auto key is left out: the column's sequence gives it, returned as bulk_create's is.
        fields = [f for f in meta.concrete_fields if not f.generated and f is not auto_pk]
        quote = connection.ops.quote_name
        sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))})")
        if auto_pk is not None:
            sql += f" RETURNING {quote(pk.column)}"
        _single_row_sql[key] = (sql, fields, auto_pk)
    return _single_row_sql[key]


def _insert_one(obj, connection):
    sql, fields, auto_pk = _single_row_statement(type(obj), connection)
    if auto_pk is not None and obj.pk is not None:
        # A preset key on an auto-key model (rare: fixtures, imports): let bulk_create handle it.
        type(obj)._default_manager.db_manager(connection.alias).bulk_create([obj])
        return
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if auto_pk is not None:
            setattr(obj, auto_pk.attname, cursor.fetchone()[0])


def _copy(model, objs, connection):
    meta = model._meta
    pk = meta.pk
    fields = [f for f in meta.concrete_fields if not f.generated]
    with connection.cursor() as cursor:
        if pk.get_internal_type() in _AUTO_KEYS:
            missing = [obj for obj in objs if obj.pk is None]
            if missing:
                # The ids RETURNING would have given: the same sequence, in order.
                cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                               [meta.db_table, pk.column, len(missing)])
                for obj, (value,) in zip(missing, cursor.fetchall()):
                    setattr(obj, pk.attname, value)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        table = connection.ops.quote_name(meta.db_table)
        raw = cursor.cursor  # the psycopg cursor: Django's wrapper has no copy()
        # wrap_database_errors: a failing row raises Django's IntegrityError etc., as an INSERT would.
        with connection.wrap_database_errors, raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields])
