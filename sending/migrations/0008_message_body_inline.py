"""Keep a typical message body in the message row instead of TOAST.

A 2 KB message encrypts to a little over PostgreSQL's TOAST threshold (~2 KB per row), so every
message was stored as a heap row plus two TOAST chunks and two TOAST index entries, after a
compression attempt that cannot succeed (the body is AES-GCM ciphertext). Reading it back for
delivery meant a TOAST index lookup too. With toast_tuple_target at its maximum, rows up to
~8 KB stay inline; larger bodies still go out of line, stored uncompressed (STORAGE EXTERNAL)
since compressing ciphertext only costs CPU. Measured in bench/README.md ("Third pass")."""
from django.db import migrations


def _apply(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


INLINE = ("ALTER TABLE sending_message SET (toast_tuple_target = 8160); "
          "ALTER TABLE sending_message ALTER COLUMN body SET STORAGE EXTERNAL")
DEFAULT = ("ALTER TABLE sending_message RESET (toast_tuple_target); "
           "ALTER TABLE sending_message ALTER COLUMN body SET STORAGE EXTENDED")


class Migration(migrations.Migration):
    dependencies = [("sending", "0007_recipient_email_ci_index")]

    operations = [migrations.RunPython(_apply(INLINE), _apply(DEFAULT))]
