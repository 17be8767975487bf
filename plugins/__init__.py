"""The bundled plugins. The kernel finds them by name and never imports them directly."""
