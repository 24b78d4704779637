"""The exact operations, one module per family; each op analyses shapes into an OpStats."""
