from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from projects.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--name", default="cli", help="a label to tell tokens apart")
        parser.add_argument("--expires-in", type=int, metavar="DAYS", help="days until it expires (default: never)")

    def handle(self, *args, user, name, expires_in, **options):
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {user!r}") from None
        if expires_in is not None and expires_in <= 0:
            raise CommandError("--expires-in must be a positive number of days")
        try:
            _, secret = api_token_create(
                user=owner, name=name, expires_in=timedelta(days=expires_in) if expires_in else None
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(secret)
