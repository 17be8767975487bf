"""The realtime channel: one websocket per tab at ``/ws``, JSON messages routed to plugins, delivery through the bus.

- :mod:`~kernel.realtime.connection`: one open socket, its queue and rate limit;
- :mod:`~kernel.realtime.hub`: this process's sockets, the plugins' handlers, sending through the bus;
- :mod:`~kernel.realtime.bus`: in-process or Redis delivery between processes;
- :mod:`~kernel.realtime.messages`: the handler types and the feature guard;
- :mod:`~kernel.realtime.endpoint`: the ``/ws`` endpoint;
- :mod:`~kernel.realtime.client`: a client of the channel, for bots, tests and benchmarks.

The protocol is documented in docs/realtime.md.
"""
