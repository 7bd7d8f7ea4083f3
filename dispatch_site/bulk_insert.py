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
use `bulk_create`.

`one_statement()` goes further for the submission path: the insert_many calls made inside it
are gathered and run as ONE statement (data-modifying CTEs, each table's rows as one jsonb
parameter), optionally gated by a data-modifying statement (the quota
reservation) so that nothing is inserted unless the gate succeeded. In autocommit that statement
is its own transaction: no BEGIN/COMMIT round trips, and the gate and the rows commit or fail
together."""
import contextlib
import json
from contextvars import ContextVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router, transaction

COPY_MIN_ROWS = 2
_gathering = ContextVar("bulk_insert_gathering", default=None)


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
    statement = _gathering.get()
    if statement is not None and statement.connection is connection:
        statement.add(model, objs)
        return objs
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
    copy_rows(connection, meta.db_table, [f.column for f in fields],
              ([f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields] for obj in objs))


def copy_rows(connection, table, columns, rows):
    """COPY `rows` (sequences of values, in `columns` order, as psycopg adapts them) into `table`
    (PostgreSQL)."""
    quote = connection.ops.quote_name
    sql = f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: Django's wrapper has no copy()
        # wrap_database_errors: a failing row raises Django's IntegrityError etc., as an INSERT would.
        with connection.wrap_database_errors, raw.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)


def on_commit(callback, using="default"):
    """transaction.on_commit, except inside `one_statement()`: then the callback waits for the
    gathered statement to have run (and is dropped if its gate refused it)."""
    statement = _gathering.get()
    if statement is not None and statement.connection is connections[using]:
        statement.callbacks.append(callback)
    else:
        transaction.on_commit(callback, using=using)


@contextlib.contextmanager
def one_statement(using="default"):
    """Gather the insert_many and on_commit calls made inside the block; the caller then runs
    them with `OneStatement.execute`. PostgreSQL only (elsewhere insert_many does not gather)."""
    statement = OneStatement(connections[using])
    token = _gathering.set(statement)
    try:
        yield statement
    finally:
        _gathering.reset(token)


class OneStatement:
    """Each table's rows travel as ONE jsonb parameter, turned into rows by PostgreSQL's
    jsonb_populate_recordset (each value through its column type's input function, an absent
    key is NULL): the statement text and its parameter list then depend only on which tables
    take part, so psycopg caches its conversion (and the statement can be prepared). Measured
    (CPU of this process + its PostgreSQL backend per stored message): one array per column
    through unnest, as Django's bulk_create does, cost 5-20 % MORE than the INSERTs + COPY it
    replaces: ~65 parameters are more than psycopg caches a query's conversion for, and dumping
    that many arrays costs more than one json text; the bodies as a separate bytea array
    (no hex in the json) cost more again, in planning the join. jsonb rather than json: a json
    parameter is parsed twice (json_in, then the populate function), a jsonb one once."""

    _sql = {}  # (models, gate, probe) -> statement text

    def __init__(self, connection):
        self.connection = connection
        self.tables = []  # (model, fields, rows as json, objs, auto primary key)
        self.callbacks = []

    def add(self, model, objs):
        connection = self.connection
        auto_pk = model._meta.pk if model._meta.pk.get_internal_type() in _AUTO_KEYS else None
        if auto_pk is not None and any(obj.pk is not None for obj in objs):
            raise ValueError("one_statement() takes an auto primary key from its sequence only")
        fields = [f for f in model._meta.concrete_fields if not f.generated and f is not auto_pk]
        as_json = [(f, f.column, _json_value(f)) for f in fields]
        rows = []
        for obj in objs:
            row = {}
            for f, column, convert in as_json:
                value = f.pre_save(obj, add=True)
                if value is not None:
                    row[column] = convert(value, f, connection)
            rows.append(row)
        # DjangoJSONEncoder for what is nested in a JSONField (as the Event payload's encoder).
        self.tables.append((model, fields, json.dumps(rows, cls=DjangoJSONEncoder, ensure_ascii=False), objs, auto_pk))

    def execute(self, *, gate=None, probe=None, params=None):
        """Run the gathered INSERTs as one statement and return (stored, probe value). `gate`
        is a data-modifying statement with RETURNING: when it returns no row nothing is
        inserted and stored is False. `probe` is a scalar subquery read in the statement's
        snapshot (before its changes). Auto primary keys are set on the objects; the gathered
        callbacks are handed to transaction.on_commit once stored. Inside a transaction the
        statement runs in a savepoint, so a failure leaves the caller's transaction usable."""
        connection = self.connection
        sql = self._statement(gate, probe)
        values = dict(params or {})
        for n, (_, _, rows, _, _) in enumerate(self.tables):
            values[f"t{n}"] = rows
        in_transaction = transaction.atomic(using=connection.alias) if connection.in_atomic_block else contextlib.nullcontext()
        with in_transaction, connection.cursor() as cursor:
            cursor.execute(sql, values)
            stored, probed, *keys = cursor.fetchone()
        if not stored:
            return False, probed
        keys = iter(keys)
        for _, _, _, objs, auto_pk in self.tables:
            if auto_pk is not None:
                for obj, value in zip(objs, next(keys)):
                    setattr(obj, auto_pk.attname, value)
            for obj in objs:
                obj._state.adding = False
                obj._state.db = connection.alias
        for callback in self.callbacks:
            transaction.on_commit(callback, using=connection.alias)
        return True, probed

    def _statement(self, gate, probe):
        key = (tuple(model for model, *_ in self.tables), gate, probe)
        if key not in self._sql:
            quote = self.connection.ops.quote_name
            ctes, selects = [], ["EXISTS (SELECT FROM gate)" if gate else "true", probe or "NULL"]
            if gate:
                ctes.append(f"gate AS ({gate})")
            condition = " WHERE EXISTS (SELECT FROM gate)" if gate else ""
            for n, (model, fields, _, _, auto_pk) in enumerate(self.tables):
                table = quote(model._meta.db_table)
                columns = ", ".join(quote(f.column) for f in fields)
                returning = ""
                if auto_pk is not None:
                    # A sequence gives keys in the order rows are inserted, which is the array's.
                    returning = f" RETURNING {quote(auto_pk.column)}"
                    selects.append(f"ARRAY(SELECT {quote(auto_pk.column)} FROM t{n} ORDER BY 1)")
                ctes.append(
                    f"t{n} AS (INSERT INTO {table} ({columns}) SELECT {columns} "
                    f"FROM jsonb_populate_recordset(NULL::{table}, %(t{n})s::jsonb){condition}{returning})"
                )
            self._sql[key] = f"WITH {', '.join(ctes)} SELECT {', '.join(selects)}"
        return self._sql[key]


_STR_KINDS = ("CharField", "TextField", "EmailField", "SlugField", "URLField")
_INT_KINDS = ("IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
              "PositiveBigIntegerField", "PositiveSmallIntegerField")


def _json_value(field):
    """How a field's Python value is written for its column's input function."""
    target = field.target_field if field.is_relation else field
    kind = target.get_internal_type()
    if kind in ("DateTimeField", "DateField", "TimeField"):
        return lambda value, f, connection: f.get_db_prep_save(value, connection).isoformat()
    if kind == "BinaryField":
        return lambda value, f, connection: "\\x" + bytes(value).hex()
    if kind == "JSONField":
        return lambda value, f, connection: value  # nested as JSON, not as text
    if kind == "UUIDField":
        return lambda value, f, connection: str(value)
    # A value that already has the column's Python type is what get_db_prep_save would return,
    # at a tenth of the cost (TextChoices members are str; a bool is not taken for an int).
    if kind in _STR_KINDS:
        return lambda value, f, connection: value if isinstance(value, str) else f.get_db_prep_save(value, connection)
    if kind in _INT_KINDS or kind == "BooleanField":
        plain = bool if kind == "BooleanField" else int
        return lambda value, f, connection: value if type(value) is plain else f.get_db_prep_save(value, connection)
    return lambda value, f, connection: f.get_db_prep_save(value, connection)
