from django.core.management.base import BaseCommand

from dashboard.demo import create_demo_data


class Command(BaseCommand):
    help = "Create the demo organization, users, runner, classes and project (once)."

    def handle(self, *args, **options):
        result = create_demo_data()
        if not result.created:
            self.stdout.write("Demo data already exists (users admin and member).")
            return
        self.stdout.write(self.style.SUCCESS("Demo data created."))
        for username, password in result.passwords.items():
            self.stdout.write(f"  user {username:<7} password {password}")
        self.stdout.write("  (set DEMO_ADMIN_PASSWORD / DEMO_MEMBER_PASSWORD to choose them; shown only now)")
