"""``GET /v1/tools`` and ``POST /v1/tools/call``: the caller's organization's tools.

The conventions of the proxy's own endpoints: the proxy key, OpenAI's error format, async.
"""

from __future__ import annotations

from common.errors import InvalidRequest
from proxy.views import (
    ProxyEndpoint,
    authenticate,
    authenticate_sized,
    json_object,
    json_response,
    openai_errors,
)
from tools.invoke import tool_call
from tools.selectors import organization_tools


class ToolsView(ProxyEndpoint):
    http_method_names = ["get"]

    @openai_errors
    async def get(self, request):
        principal = await authenticate(request)
        snapshot = await organization_tools(organization_id=principal.organization_id)
        data = [spec.function_tool() for spec in snapshot.tools.values()]
        return json_response({"object": "list", "data": data})


class ToolCallView(ProxyEndpoint):
    http_method_names = ["post"]

    @openai_errors
    async def post(self, request):
        principal = await authenticate_sized(request)
        body = json_object(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("Name the tool to call ('name').", param="name")
        result = await tool_call(
            principal=principal,
            name=name,
            arguments=body.get("arguments"),
            request_id=request.request_id,
        )
        return json_response(result.as_openai())
