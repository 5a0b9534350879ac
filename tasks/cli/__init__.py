"""The `flywheel` command line: it only wires commands to the engine and the steps."""
