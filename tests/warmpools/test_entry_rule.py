"""Who may open a shell in an environment (its terminal, exec): the creator and the
organization's admins; another member and an outsider may not, nor an anonymous caller."""

from django.contrib.auth.models import AnonymousUser

from projects.models import Membership, Role
from tests.builders import make_organization, make_users
from warmpools.queries import can_enter


def test_creator_and_admins_enter_others_do_not(org, make_pool, make_environment):
    environment = make_environment(make_pool(), creator=org.member)
    (colleague,) = make_users("carol")
    make_organization("Carol's other org", admin=colleague)
    Membership.objects.create(organization=org.organization, user=colleague, role=Role.MEMBER)
    assert can_enter(org.member, environment)
    assert can_enter(org.admin, environment)
    assert not can_enter(colleague, environment)
    assert not can_enter(org.outsider, environment)
    assert not can_enter(AnonymousUser(), environment)
