"""The ``tools`` stage: attaches an organization's registered tools to the chat requests
its rules match (issue 22; the original proxy's keyword detection).

A request that says ``tool_choice: "none"`` gets nothing: the client asked for no tools.
A tool the client already sent under the same name is left as the client wrote it. What
was attached is named in the call's annotations (usage event and access line).
"""

from __future__ import annotations

import logging

from common.outages import is_outage_error
from proxy.pipeline.stage import Stage
from tools.matching import last_user_text, matching_tool_names
from tools.selectors import organization_tools

logger = logging.getLogger(__name__)


def _client_tool_names(tools) -> set[str]:
    names = set()
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


class ToolsStage(Stage):
    name = "tools"

    async def on_request(self, call) -> dict | None:
        body = call.body
        if body.get("tool_choice") == "none":
            return None
        text = last_user_text(body.get("messages"))
        if not text:
            return None
        try:
            snapshot = await organization_tools(organization_id=call.principal.organization_id)
        except Exception as error:
            if not is_outage_error(error):
                raise
            # The database is down: the request goes on without the optional tools
            # rather than failing, and the annotation says so.
            call.annotations[self.name] = {"unavailable": True}
            return None
        if not snapshot.rules:
            return None
        names = matching_tool_names(snapshot.rules, text)
        present = _client_tool_names(body.get("tools"))
        added = [snapshot.tools[n] for n in names if n in snapshot.tools and n not in present]
        if not added:
            return None
        existing = body.get("tools") if isinstance(body.get("tools"), list) else []
        call.body = {**body, "tools": [*existing, *(spec.function_tool() for spec in added)]}
        call.annotations[self.name] = {
            "attached": ",".join(spec.name for spec in added),
            "count": len(added),
        }
        return None
