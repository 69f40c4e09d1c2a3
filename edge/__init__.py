"""On-device loop: 360-degree geometry, reflex perception, speech and the server."""
