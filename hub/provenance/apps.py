from django.apps import AppConfig


class ProvenanceConfig(AppConfig):
    name = "hub.provenance"
    label = "provenance"
