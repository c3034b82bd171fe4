from django.apps import AppConfig

# What an organization admin may do with the proxy's data (rows scoped by organization).
ORGANIZATION_ADMIN_PERMISSIONS = [
    "view_modelroute",
    "add_modelroute",
    "change_modelroute",
    "delete_modelroute",
    "view_deployment",
    "add_deployment",
    "change_deployment",
    "delete_deployment",
    "view_translatedprompt",
    "view_cacheentry",
    "delete_cacheentry",
]


class ProxyConfig(AppConfig):
    name = "proxy"
    verbose_name = "Proxy"

    def ready(self):
        from accounts.permissions import organization_admin_permissions_register

        organization_admin_permissions_register(
            app_label=self.label, codenames=ORGANIZATION_ADMIN_PERMISSIONS
        )
        from common.health import component_register
        from proxy.response_cache.tier import semantic_tier_state

        component_register("semantic_cache", semantic_tier_state)
        # The stage list is loaded at start, so a bad entry stops the process with a
        # message naming it instead of failing every request.
        from proxy.pipeline.registry import active_stages

        active_stages()
