import django.db.models.deletion
from django.db import migrations, models


def mark_heads(apps, schema_editor):
    """Mark the first pending message of each line, as fan-out does from now on."""
    message = apps.get_model("django_flowdock", "Message")
    db = schema_editor.connection.alias
    pending = message.objects.using(db).filter(state="pending").order_by()
    firsts = pending.values("source_id", "thread_key").annotate(first=models.Min("pk"))
    pks = [row["first"] for row in firsts]
    for start in range(0, len(pks), 500):
        message.objects.using(db).filter(pk__in=pks[start : start + 500]).update(head=True)


class Migration(migrations.Migration):
    dependencies = [
        ("django_flowdock", "0007_message_admin_indexes"),
    ]

    operations = [
        # Claims walk (state, head, id) now; each index is one more write per outcome.
        migrations.RemoveIndex(model_name="message", name="django_flow_state_71d5a9_idx"),
        migrations.AddField(
            model_name="message",
            name="head",
            field=models.BooleanField(default=False, editable=False, verbose_name="first in line"),
        ),
        migrations.AlterField(
            model_name="message",
            name="source",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="messages",
                to="django_flowdock.source",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["state", "head", "id"], name="django_flow_state_6f7cac_idx"),
        ),
        migrations.RunPython(mark_heads, migrations.RunPython.noop),
    ]
