"""Built-in plugin: registers OML's own retrieval components and commands (filled in by the retrieval issue)."""
