"""The HTTP edge: the JSON API (``api/``), the pages (``pages/``), and what every route shares:
requests, responses, forms, rendering, sessions, CSRF, middleware, routing, guards, error pages.

Route handlers here stay thin: they validate, call a kernel service, shape
the answer. Above it are only the realtime endpoint (a websocket is an HTTP
request first), the composition root and the public facade.
"""
