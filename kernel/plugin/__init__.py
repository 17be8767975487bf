"""The plugin contract and its machinery.

- :mod:`~kernel.plugin.hookspecs`: the hooks a plugin implements, and their documentation;
- :mod:`~kernel.plugin.contract`: the value types plugins hand to the kernel (Manifest, Feature, NavItem ...);
- :mod:`~kernel.plugin.state`: :class:`PluginState`, a plugin's typed state on each kernel;
- :mod:`~kernel.plugin.answers`: reading the answers of a hook call;
- :mod:`~kernel.plugin.manager`: discovery, boot checks, switches, calling hooks;
- :mod:`~kernel.plugin.builtin_hooks`: the kernel's own navigation and profile actions;
- :mod:`~kernel.plugin.check`: ``everything plugins check``.
"""
