"""Remote A2A agents as tools (docs/a2a.md, "Delegating to other agents"): configuration
(:mod:`.config`), the card and answers as agora's tool spec and results (:mod:`.results`,
pure), and the connection the executor holds per agent (:mod:`.connection`, with the SDK).
"""
