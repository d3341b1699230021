from django.apps import AppConfig


class MlflowCompatConfig(AppConfig):
    name = "hub.compat.mlflow"
    label = "mlflow_compat"
    verbose_name = "MLflow compatibility"
    default_auto_field = "django.db.models.BigAutoField"
