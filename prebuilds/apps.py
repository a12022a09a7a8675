from django.apps import AppConfig


class PrebuildsConfig(AppConfig):
    name = "prebuilds"
