"""The live training viewer: a page on 127.0.0.1 with every env runner's cars, the curves and the latest lap."""
