from django.apps import AppConfig


class WarmpoolsConfig(AppConfig):
    name = "warmpools"
