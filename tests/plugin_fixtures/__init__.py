"""Small plugins the tests load, each showing one behaviour of the plugin manager."""
