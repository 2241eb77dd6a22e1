"""Developer tools: the import-graph check."""
