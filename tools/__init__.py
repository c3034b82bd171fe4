"""Tools an organization registers: HTTP endpoints the proxy calls, listed at ``/v1/tools``,
attached to chat requests by rules, and served over MCP (docs/decisions/0033)."""
