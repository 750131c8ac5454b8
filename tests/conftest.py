import pytest

from django_flowdock.models import Source


@pytest.fixture
def sandbox(flowdock_sandbox, settings):
    """The session's sandbox, emptied, with FLOWDOCK["API_URL"] pointing at it."""
    flowdock_sandbox.reset()
    settings.FLOWDOCK = {**settings.FLOWDOCK, "API_URL": flowdock_sandbox.url}
    return flowdock_sandbox


@pytest.fixture
def source(db, sandbox):
    """A source connected by hand with the sandbox's flow token (the seeds' quick start)."""
    return Source.objects.create(name="Helpdesk", flow_token=sandbox.flow_token)


@pytest.fixture
def locmem(flowdock_outbox):
    """The shipped ``flowdock_outbox`` fixture, used as our users would."""
    return flowdock_outbox
