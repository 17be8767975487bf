// recorder: proves plugin scripts reach every page
