from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ProjectsConfig(AppConfig):
    name = "projects"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from projects import services
        from projects.models import Membership, User

        # Users and memberships change outside the services too (the admin, `manage.py
        # changepassword`): whatever changed them, a token's cached user and roles must not outlive
        # a deactivation or a removed membership.
        def user_saved(sender, instance, created, **kwargs):
            if not created:
                services.api_tokens_forget(instance.pk)

        def membership_changed(sender, instance, **kwargs):
            services.api_tokens_forget(instance.user_id)

        post_save.connect(user_saved, sender=User, weak=False, dispatch_uid="projects.user_saved")
        post_save.connect(membership_changed, sender=Membership, weak=False, dispatch_uid="projects.membership_saved")
        post_delete.connect(
            membership_changed, sender=Membership, weak=False, dispatch_uid="projects.membership_deleted"
        )
