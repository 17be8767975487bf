"""A plugin that cannot even be imported."""

raise ImportError("this plugin's dependency is missing")
