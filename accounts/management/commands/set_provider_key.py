from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import Organization, Provider


class Command(BaseCommand):
    help = "Store an upstream provider key, encrypted, for an organization or the platform."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="organization slug; omit for a platform-wide key")
        parser.add_argument("--provider", required=True, choices=Provider.values)
        parser.add_argument("--key", required=True)
        parser.add_argument("--base-url", default="")
        parser.add_argument("--name", default="default", help="to keep several keys apart")
        parser.add_argument("--api-version", default="", help="Azure OpenAI api-version")

    def handle(self, *args, org, provider, key, base_url, name, api_version, **options):
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"no organization with slug {org}")
        credential = services.provider_credential_set(
            organization=organization,
            provider=provider,
            key=key,
            base_url=base_url,
            name=name,
            options={"api_version": api_version} if api_version else {},
            actor=None,
        )
        owner = org or "the platform"
        self.stdout.write(f"stored {provider} key …{credential.last_four} for {owner}")
