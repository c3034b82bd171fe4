"""The management API of the prompt library: organization admins write, members read.

A prompt is addressed by its name or its id (``/api/prompts/greeting/`` or ``/api/prompts/7/``);
another organization's prompt answers 404 like one that does not exist.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import ERRORS, ORGANIZATION_PARAMETER, _caller
from common.errors import InvalidRequest, PermissionDenied
from prompts import selectors, services
from prompts.serializers import (
    LabelSetSerializer,
    PromptCreateSerializer,
    PromptDiffSerializer,
    PromptSerializer,
    PromptUpdateSerializer,
    PromptUsageSerializer,
    PromptVersionSerializer,
)
from prompts.templating import diff, version_text

ADMINS_ONLY = {403: OpenApiResponse(description="Only organization admins may change prompts.")}


def _admin(request):
    caller = _caller(request)
    if not caller.is_admin:
        raise PermissionDenied("Only organization admins can change prompts.")
    return caller


def _prompt(caller, ref: str):
    prompt = selectors.prompt_get(organization_id=caller.organization.pk, ref=ref)
    return selectors.prompts_for_org(organization_id=caller.organization.pk).get(pk=prompt.pk)


def _version_create(prompt, data: dict, actor):
    return services.prompt_version_create(
        prompt=prompt,
        messages=data["messages"],
        model=data["model"],
        parameters=data["parameters"],
        commit_message=data["commit_message"],
        labels=tuple(data["labels"]),
        actor=actor,
    )


class PromptListCreateView(APIView):
    """``GET``: the organization's prompts. ``POST`` (admins): a new prompt, with its first
    version if ``version`` is given."""

    @extend_schema(
        operation_id="prompts_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: PromptSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        caller = _caller(request)
        prompts = selectors.prompts_for_org(organization_id=caller.organization.pk)
        return Response({"object": "list", "data": PromptSerializer(prompts, many=True).data})

    @extend_schema(
        operation_id="prompts_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=PromptCreateSerializer,
        responses={201: PromptSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def post(self, request):
        caller = _admin(request)
        payload = PromptCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        with transaction.atomic():  # a refused first version leaves no prompt behind
            prompt = services.prompt_create(
                organization=caller.organization,
                name=data["name"],
                description=data["description"],
                actor=caller.user,
            )
            if "version" in data:
                _version_create(prompt, data["version"], caller.user)
        body = PromptSerializer(_prompt(caller, str(prompt.pk))).data
        return Response(body, status=status.HTTP_201_CREATED)


class PromptDetailView(APIView):
    @extend_schema(
        operation_id="prompts_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: PromptSerializer, **ERRORS},
    )
    def get(self, request, ref: str):
        return Response(PromptSerializer(_prompt(_caller(request), ref)).data)

    @extend_schema(
        operation_id="prompts_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=PromptUpdateSerializer,
        responses={200: PromptSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def patch(self, request, ref: str):
        caller = _admin(request)
        prompt = _prompt(caller, ref)
        payload = PromptUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.prompt_update(
            prompt=prompt, description=payload.validated_data["description"], actor=caller.user
        )
        return Response(PromptSerializer(_prompt(caller, ref)).data)

    @extend_schema(
        operation_id="prompts_delete",
        parameters=[ORGANIZATION_PARAMETER],
        responses={204: None, **ADMINS_ONLY, **ERRORS},
    )
    def delete(self, request, ref: str):
        caller = _admin(request)
        services.prompt_delete(prompt=_prompt(caller, ref), actor=caller.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PromptVersionListCreateView(APIView):
    """``GET``: every version, newest first. ``POST`` (admins): the next version; versions
    are never edited, a change is a new version."""

    @extend_schema(
        operation_id="prompt_versions_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: PromptVersionSerializer(many=True), **ERRORS},
    )
    def get(self, request, ref: str):
        prompt = _prompt(_caller(request), ref)
        versions = prompt.versions.select_related("author").prefetch_related("labels")
        data = PromptVersionSerializer(versions, many=True).data
        return Response({"object": "list", "data": data})

    @extend_schema(
        operation_id="prompt_versions_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=PromptVersionSerializer,
        responses={201: PromptVersionSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def post(self, request, ref: str):
        caller = _admin(request)
        prompt = _prompt(caller, ref)
        payload = PromptVersionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        version = _version_create(prompt, payload.validated_data, caller.user)
        return Response(PromptVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class PromptVersionDetailView(APIView):
    @extend_schema(
        operation_id="prompt_versions_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: PromptVersionSerializer, **ERRORS},
    )
    def get(self, request, ref: str, number: int):
        prompt = _prompt(_caller(request), ref)
        version = selectors.version_get(prompt=prompt, number=number)
        return Response(PromptVersionSerializer(version).data)


class PromptLabelView(APIView):
    """``PUT`` (admins): point ``label`` at a version (moving it if it exists).
    ``DELETE`` (admins): remove the label."""

    @extend_schema(
        operation_id="prompt_labels_set",
        parameters=[ORGANIZATION_PARAMETER],
        request=LabelSetSerializer,
        responses={200: PromptSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def put(self, request, ref: str, label: str):
        caller = _admin(request)
        prompt = _prompt(caller, ref)
        payload = LabelSetSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        version = selectors.version_get(prompt=prompt, number=payload.validated_data["version"])
        services.prompt_label_set(prompt=prompt, label=label, version=version, actor=caller.user)
        return Response(PromptSerializer(_prompt(caller, ref)).data)

    @extend_schema(
        operation_id="prompt_labels_delete",
        parameters=[ORGANIZATION_PARAMETER],
        responses={204: None, **ADMINS_ONLY, **ERRORS},
    )
    def delete(self, request, ref: str, label: str):
        caller = _admin(request)
        services.prompt_label_remove(prompt=_prompt(caller, ref), label=label, actor=caller.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _int_param(request, name: str) -> int:
    value = request.query_params.get(name, "")
    if not value.isdigit():
        raise InvalidRequest(f"'{name}' must be a version number.", param=name)
    return int(value)


class PromptDiffView(APIView):
    """What changed from one version to another, as a unified diff of their text."""

    @extend_schema(
        operation_id="prompts_diff",
        parameters=[
            ORGANIZATION_PARAMETER,
            OpenApiParameter("from", int, required=True, description="The older version."),
            OpenApiParameter("to", int, required=True, description="The newer version."),
        ],
        responses={200: PromptDiffSerializer, **ERRORS},
    )
    def get(self, request, ref: str):
        prompt = _prompt(_caller(request), ref)
        old = selectors.version_get(prompt=prompt, number=_int_param(request, "from"))
        new = selectors.version_get(prompt=prompt, number=_int_param(request, "to"))
        lines = diff(
            version_text(messages=old.messages, model=old.model, parameters=old.parameters),
            version_text(messages=new.messages, model=new.model, parameters=new.parameters),
            old_name=f"{prompt.name} v{old.number}",
            new_name=f"{prompt.name} v{new.number}",
        )
        body = {
            "prompt": prompt.name,
            "from_version": old.number,
            "to_version": new.number,
            "diff": "\n".join(lines),
        }
        return Response(PromptDiffSerializer(body).data)


class PromptUsageView(APIView):
    """Requests, tokens and cost (micro-dollars) of the calls that used the prompt, per version."""

    @extend_schema(
        operation_id="prompts_usage",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: PromptUsageSerializer, **ERRORS},
    )
    def get(self, request, ref: str):
        caller = _caller(request)
        prompt = _prompt(caller, ref)
        rows = selectors.prompt_usage_by_version(
            organization_id=caller.organization.pk, name=prompt.name
        )
        return Response({"object": "prompt.usage", "prompt": prompt.name, "data": rows})
