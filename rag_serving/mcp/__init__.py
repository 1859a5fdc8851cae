"""MCP servers over the same services as the REST API: `docstore` (search, answers, documents)
and `governance` (erasure with consent, its status, the audit trail, readmission).

Each is an `MCPServer` built by `docstore.build` / `governance.build`, served over stdio by
`ragctl mcp docstore|governance` (as the local identity) and over streamable HTTP by the API
at `/mcp/docstore` and `/mcp/governance` (`rag_serving.mcp.http`: OIDC bearer tokens, scopes,
rate and body limits as on REST). Tools hold no logic of their own: every one is a call into
`rag_core`, run with the caller's groups. `docs/mcp.md` shows how to connect a client.
"""
