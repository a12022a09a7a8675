from django.apps import AppConfig


class WarmpoolsConfig(AppConfig):
    name = "warmpools"

    def ready(self):
        # Prebuilds and projects announce; pools listen. The import arrow stays warmpools -> prebuilds.
        from prebuilds.status import prebuild_completed
        from projects.services import prebuild_configuration_changed
        from warmpools import services

        prebuild_completed.connect(services.on_prebuild_completed, dispatch_uid="warmpools.rotate")
        prebuild_configuration_changed.connect(
            services.on_prebuild_configuration_changed, dispatch_uid="warmpools.config-changed"
        )
