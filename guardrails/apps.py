from django.apps import AppConfig


class GuardrailsConfig(AppConfig):
    name = "guardrails"
    verbose_name = "Guardrails"
    default_auto_field = "django.db.models.BigAutoField"
