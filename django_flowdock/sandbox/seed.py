"""The organisation, flow, user, application and source every sandbox starts with."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .models import Application, Flow, Organization, Source, User
from .writes import write_transaction


def seed(
    *,
    callback_uri: str | None = None,
    setup_uri: str | None = None,
    configuration_uri: str | None = None,
) -> Source:
    """Create the seed data on first start; apply any URIs given on every start."""
    with write_transaction():
        source = Source.objects.filter(is_seed=True).select_related("application").first()
        if source is None:
            source = _create_seed()
        application = _seed_application(source)
        uris = {
            "callback_uri": callback_uri,
            "setup_uri": setup_uri,
            "configuration_uri": configuration_uri,
        }
        for name, value in uris.items():
            if value is not None:
                setattr(application, name, value)
        application.save()
    return source


def _create_seed() -> Source:
    organization = Organization.objects.create(name="Acme", parameterized_name="acme")
    flow = Flow.objects.create(organization=organization, name="Main", parameterized_name="main")
    user = User.objects.create(name="Sandbox User", nick="sandbox", email="sandbox@example.com")
    application = Application.objects.create(name="My Integration")
    return Source.objects.create(
        flow=flow, application=application, creator=user, name="Sandbox source", is_seed=True
    )


def _seed_application(source: Source) -> Application:
    application = source.application
    if application is None:
        raise ImproperlyConfigured(
            "The sandbox's seeded source has lost its application; delete the sandbox "
            "database to seed a new one."
        )
    return application


def credentials(source: Source, url: str) -> dict[str, Any]:
    """What a developer or a test needs to talk to this sandbox."""
    flow, user, application = source.flow, source.creator, _seed_application(source)
    return {
        "url": url,
        "flow": {
            "id": flow.id,
            "name": flow.name,
            "parameterized_name": flow.parameterized_name,
            "organization": flow.organization.parameterized_name,
            "url": f"{url}{flow.path}",
            "web_url": f"{url}/app{flow.path.removeprefix('/flows')}",
        },
        "user": {
            "id": user.pk,
            "name": user.name,
            "email": user.email,
            "api_token": user.api_token,
        },
        "source": {"id": source.pk, "name": source.name, "flow_token": source.flow_token},
        "application": {
            "id": application.pk,
            "name": application.name,
            "client_id": application.client_id,
            "client_secret": application.client_secret,
            "callback_uri": application.callback_uri,
            "setup_uri": application.setup_uri,
            "configuration_uri": application.configuration_uri,
        },
    }
