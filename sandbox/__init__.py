"""The sandbox: a demo world for users and the kit feature teams build plugins with."""
