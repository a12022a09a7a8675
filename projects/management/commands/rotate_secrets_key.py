"""Re-encrypt every organization and project secret with the newest key of SECRETS_ENCRYPTION_KEYS.

Rotation: put the new key first in SECRETS_ENCRYPTION_KEYS (keeping the old ones after it), restart,
run this, then drop the old keys.
"""

from django.core.management.base import BaseCommand

from projects.services import secrets_rotate_key


class Command(BaseCommand):
    help = "Re-encrypt every secret with the newest key of SECRETS_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        count = secrets_rotate_key()
        self.stdout.write(f"re-encrypted {count} secret(s) with the newest key")
