"""The active stages: ``settings.SYNTHLANG_STAGES`` (dotted paths, in order), imported and
instantiated once per distinct list (a test that overrides the setting gets its own)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from proxy.pipeline.stage import Stage


def _load(path: str) -> Stage:
    try:
        target = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"SYNTHLANG_STAGES: cannot import '{path}' ({error})."
        ) from error
    stage = target() if isinstance(target, type) else target
    if not isinstance(stage, Stage):
        raise ImproperlyConfigured(
            f"SYNTHLANG_STAGES: '{path}' is not a proxy.pipeline.stage.Stage."
        )
    if not stage.name:
        raise ImproperlyConfigured(f"SYNTHLANG_STAGES: '{path}' has no name.")
    return stage


@lru_cache(maxsize=8)
def _stages_for_paths(paths: tuple[str, ...]) -> tuple[Stage, ...]:
    stages = tuple(_load(path) for path in paths)
    names = [stage.name for stage in stages]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ImproperlyConfigured(
            f"SYNTHLANG_STAGES: two stages are named {', '.join(duplicates)}."
        )
    return stages


def defines(stage: Stage, hook: str) -> bool:
    """Whether ``stage`` has its own ``hook`` rather than the contract's do-nothing default."""
    return getattr(type(stage), hook) is not getattr(Stage, hook)


@lru_cache(maxsize=256)
def defining_among(stages: tuple[Stage, ...], hook: str) -> tuple[Stage, ...]:
    """Those of ``stages`` (in their order) that define ``hook``: the runner calls no
    default. Nine stages with four hooks each made about two hundred Python calls per
    request, nearly all of them doing nothing."""
    return tuple(stage for stage in stages if defines(stage, hook))


@lru_cache(maxsize=32)
def _for_endpoint(stages: tuple[Stage, ...], endpoint: str) -> tuple[Stage, ...]:
    return tuple(stage for stage in stages if endpoint in stage.endpoints)


def active_stages() -> tuple[Stage, ...]:
    """Every configured stage, in list order."""
    return _stages_for_paths(tuple(settings.SYNTHLANG_STAGES))


def stages_for(endpoint: str) -> tuple[Stage, ...]:
    """The configured stages that act on ``endpoint``, in list order."""
    return _for_endpoint(active_stages(), endpoint)


async def stages_require_translation(call) -> bool:
    """Whether a stage must read this call's real request and answer, so a request that
    could be passed through untranslated (Responses to OpenAI, Messages to Anthropic) is
    translated instead."""
    for stage in stages_for(call.endpoint):
        if await stage.requires_translation(call):
            return True
    return False
