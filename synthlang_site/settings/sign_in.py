"""Who may sign in, and how: Django's backends, single sign-on (OpenID Connect) and the
throttling of failed sign-ins and key lookups."""

from datetime import timedelta

from synthlang_site.envconfig import env_bool, env_choice, env_int, env_list, env_str

# django-axes first: it refuses a locked-out account or address before a password is
# checked. Any later sign-in backend (SSO) goes after it and is throttled the same way.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Local passwords: everyone's, or with ADMIN_LOCAL_PASSWORDS=false platform staff's
    # only (a way in when the identity provider is down).
    "accounts.oidc.LocalPasswordBackend",
]

# --- Single sign-on to the admin (OpenID Connect, mozilla-django-oidc) ----------------
# On when OIDC_RP_CLIENT_ID is set. Users are created on their first sign-in; their
# organizations and roles come from the ID token's or userinfo's claims (accounts/oidc.py).
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT") or None
OIDC_RP_SIGN_ALGO = env_choice(
    "OIDC_RP_SIGN_ALGO", "RS256", ("RS256", "ES256", "HS256"), upper=True
)
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile") or "openid email profile"
OIDC_USERNAME_ALGO = "accounts.oidc.username_from_claims"
OIDC_CREATE_USER = True
# The claim naming the user's organizations (slugs: a string or a list), the claim with
# their groups, and which group gives which role ("group=role,..."; first match wins in
# the order admin, premium, basic; no match: DEFAULT_ROLE).
OIDC_ORGANIZATION_CLAIM = env_str("OIDC_ORGANIZATION_CLAIM", "organization") or "organization"
OIDC_ROLE_CLAIM = env_str("OIDC_ROLE_CLAIM", "groups") or "groups"
OIDC_ROLE_MAP = env_str("OIDC_ROLE_MAP", "admin=admin,premium=premium,basic=basic")
ADMIN_LOCAL_PASSWORDS = env_bool("ADMIN_LOCAL_PASSWORDS", True)
LOGIN_REDIRECT_URL = "/admin/"
LOGOUT_REDIRECT_URL = "/admin/login/"
if OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.append("accounts.oidc.OrganizationOIDCBackend")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Brute force ---------------------------------------------------------------------
# Reverse proxies whose X-Forwarded-For is believed (addresses or networks, such as
# 127.0.0.1 for nginx on the same host or the load balancer's subnet). Empty: the
# connection's own peer is the client. Never the header's leftmost entry, which any
# client can write.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# Admin sign-ins (django-axes, database-backed): after ADMIN_LOGIN_FAILURE_LIMIT failures
# an account, and separately an address, is locked for ADMIN_LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(
    minutes=env_int("ADMIN_LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "common.client_address.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_VERBOSE = False
# API keys: after KEY_LOOKUP_FAILURE_LIMIT requests with a wrong key in the window, an
# address gets 429 until the window ends (accounts/throttle.py; 0 switches it off).
KEY_LOOKUP_FAILURE_LIMIT = env_int("KEY_LOOKUP_FAILURE_LIMIT", 20, minimum=0)
KEY_LOOKUP_FAILURE_WINDOW_SECONDS = env_int(
    "KEY_LOOKUP_FAILURE_WINDOW_SECONDS", 300, minimum=1, maximum=86_400
)
