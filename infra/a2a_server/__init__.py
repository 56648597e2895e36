"""agora as an A2A server (`agora a2a`): a message becomes a goal, a task is that goal.

``messages`` turns a message into the intake command, ``tasks`` folds a goal's events into
the A2A task and its stream updates (both pure), ``card`` is the agent card, ``handler`` the
A2A methods over agora's client library, ``http`` the endpoint with its bearer token.
docs/a2a.md is the user's view."""
