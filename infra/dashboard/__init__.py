"""``agora ui``: the live web dashboard. It reads through ``agora.query`` and the event stream
only (never the projection's file), renders HTML on the server and pushes changes over SSE.

``queries`` builds the SQL (user input as parameters), ``charts`` and ``pages`` draw SVG and
HTML (pure), ``live`` fans the log out to open pages, ``app`` wires them into Starlette,
``server`` serves it.
"""
