from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "hub.inference"
    label = "inference"
