"""WebRTC for plugins whose clients connect peers (calls and Spaces do); the names plugins use are exported by ``kernel``.

- :mod:`~kernel.webrtc.ice`: ICE settings, the servers and TURN credentials a client gets, the
  configuration of an aiortc peer, browsers' trickled candidates, the addresses our own peers offer;
- :mod:`~kernel.webrtc.sdp`: SDP sanity for signaling (the ``Sdp`` field, ``invalid_sdp``);
- :mod:`~kernel.webrtc.media`: a tone to send and a record of the media received, for scripted peers.

This package imports none of them, so that signaling (``sdp``) never loads aiortc.
"""
