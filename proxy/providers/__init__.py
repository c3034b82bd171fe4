"""Upstream providers by name; each lives in its own module behind ``base.Provider``."""

from proxy.providers.anthropic import AnthropicProvider
from proxy.providers.base import Provider
from proxy.providers.fake import FakeProvider
from proxy.providers.openai import AzureOpenAIProvider, OpenAICompatibleProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAICompatibleProvider(),
    "azure": AzureOpenAIProvider(),
    "anthropic": AnthropicProvider(),
    "fake": FakeProvider(),
}


def provider_for(name: str) -> Provider:
    return PROVIDERS[name]
