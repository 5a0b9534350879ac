"""The engine's plumbing: config, paths, the step runner, files, lineage, DVC, model files."""
