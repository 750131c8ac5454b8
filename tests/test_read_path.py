"""Reading thread objects keeps the row they were loaded from, at the cost of a
reference; the next save is compared with it, field by field."""

import json
from datetime import timedelta

import pytest
from django.db import models, transaction
from django.test.utils import isolate_apps
from django.utils import timezone

from django_flowdock.mixins import FlowdockThread, loaded_values
from django_flowdock.models import Change
from tests.testapp.models import Ticket

TICKET_FIELDS = [f.attname for f in Ticket._meta.concrete_fields]


def row(pk, **values):
    defaults = {"subject": "Polish", "description": "", "state": "open", "priority": "normal"}
    return {
        "id": pk,
        **defaults,
        "project_id": None,
        "assignee_id": None,
        "internal_note": "",
        **values,
    }


@pytest.mark.django_db
def test_a_loaded_object_knows_every_value_it_was_loaded_with():
    Ticket.objects.create(subject="Polish")
    ticket = Ticket.objects.get()
    assert loaded_values(ticket) == row(ticket.pk)


@pytest.mark.django_db
def test_a_deferred_load_knows_only_the_values_it_read():
    Ticket.objects.create(subject="Polish")
    ticket = Ticket.objects.only("subject").get()
    assert loaded_values(ticket) == {"id": ticket.pk, "subject": "Polish"}


@pytest.mark.django_db
def test_objects_built_in_memory_have_no_loaded_values():
    assert loaded_values(Ticket(subject="Polish")) is None


@pytest.mark.django_db
def test_every_load_of_a_model_keeps_its_own_row():
    Ticket.objects.bulk_create([Ticket(subject="One"), Ticket(subject="Two")])
    for _ in range(2):  # the first load and the ones after it
        subjects = [loaded_values(t)["subject"] for t in Ticket.objects.order_by("pk")]
        assert subjects == ["One", "Two"]


@pytest.mark.django_db(transaction=True)
def test_an_update_captures_the_changed_fields_old_and_new(worker_delivery):
    Ticket.objects.create(subject="Polish")
    ticket = Ticket.objects.get()
    ticket.state, ticket.priority = "solved", "high"
    started = timezone.now()
    ticket.save()
    change = Change.objects.get(event="updated")
    assert json.loads(change.values) == {
        "old": {"state": "open", "priority": "normal"},
        "new": {"state": "solved", "priority": "high"},
    }
    assert (change.model, change.object_pk) == ("testapp.ticket", str(ticket.pk))
    assert started - timedelta(seconds=1) <= change.created_at <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_each_save_is_compared_with_the_one_before(worker_delivery):
    Ticket.objects.create(subject="Polish")
    ticket = Ticket.objects.get()
    for state in ("pending", "solved"):
        ticket.state = state
        ticket.save()
    ticket.save()  # nothing changed since the last save
    updates = [json.loads(c.values) for c in Change.objects.filter(event="updated").order_by("pk")]
    assert updates == [
        {"old": {"state": "open"}, "new": {"state": "pending"}},
        {"old": {"state": "pending"}, "new": {"state": "solved"}},
    ]


@pytest.mark.django_db(transaction=True)
def test_the_changes_of_one_transaction_share_a_token(worker_delivery):
    with transaction.atomic():
        Ticket.objects.create(subject="Polish")
        ticket = Ticket.objects.get()
        ticket.state = "solved"
        ticket.save()
    ticket.state = "open"
    ticket.save()  # a transaction of its own
    tokens = list(Change.objects.order_by("pk").values_list("transaction", flat=True))
    assert tokens[0] == tokens[1] != tokens[2]
    assert all(len(token) == 32 for token in tokens)


@isolate_apps("tests.testapp")
def test_a_json_value_changed_in_place_is_still_compared_with_the_loaded_one():
    class Board(FlowdockThread, models.Model):
        layout = models.JSONField(default=dict)

        class Meta:
            app_label = "testapp"

    for _ in range(2):  # the first load and the ones after it
        board = Board.from_db("default", ["id", "layout"], (1, {"columns": ["todo"]}))
        board.layout["columns"].append("done")
        assert loaded_values(board) == {"id": 1, "layout": {"columns": ["todo"]}}


@isolate_apps("tests.testapp")
def test_a_models_own_from_db_still_runs_on_every_load():
    loads = []

    class Audited(FlowdockThread, models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "testapp"

        @classmethod
        def from_db(cls, db, field_names, values):
            loads.append(values)
            return super().from_db(db, field_names, values)

    class AuditedProxy(Audited):
        class Meta:
            app_label = "testapp"
            proxy = True

    for model in (Audited, Audited, AuditedProxy, AuditedProxy):
        obj = model.from_db("default", ["id", "name"], (1, "a"))
        assert type(obj) is model
        assert loaded_values(obj) == {"id": 1, "name": "a"}
    assert len(loads) == 4


@isolate_apps("tests.testapp")
def test_proxies_and_subclasses_keep_the_row_of_their_own_fields():
    class Parent(FlowdockThread, models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "testapp"

    class ParentProxy(Parent):
        class Meta:
            app_label = "testapp"
            proxy = True

    class Child(Parent):
        extra = models.JSONField(default=list)

        class Meta:
            app_label = "testapp"

        @classmethod
        def from_db(cls, db, field_names, values):
            return super().from_db(db, field_names, values)

    for _ in range(2):
        assert loaded_values(Parent.from_db("default", ["id", "name"], (1, "a"))) == {
            "id": 1,
            "name": "a",
        }
        proxy = ParentProxy.from_db("default", ["id", "name"], (1, "a"))
        assert type(proxy) is ParentProxy
        assert loaded_values(proxy) == {"id": 1, "name": "a"}
        child = Child.from_db("default", ["id", "name", "parent_ptr_id", "extra"], (1, "a", 1, [1]))
        child.extra.append(2)
        assert loaded_values(child) == {"id": 1, "name": "a", "parent_ptr_id": 1, "extra": [1]}
