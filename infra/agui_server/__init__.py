"""agora as an AG-UI agent: ``agora agui`` runs a goal from a ``RunAgentInput`` and streams
the goal's events, mapped to AG-UI events, over the HTTP+SSE transport (docs/agui.md)."""
